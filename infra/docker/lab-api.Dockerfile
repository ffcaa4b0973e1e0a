# The lab API (FastAPI + channels). Stateless: every setting comes from LAB_* environment variables
# (Kubernetes Secrets / compose .env); run `lab db upgrade` once per release before starting replicas.
#   docker build -f infra/docker/lab-api.Dockerfile -t lab-api:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY lab lab
COPY psi_service psi_service
COPY he_compute he_compute
COPY policies policies
RUN pip install --no-cache-dir --prefix=/install -c constraints.txt ".[channels]"

FROM python:3.11-slim
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin lab
COPY --from=build /install /usr/local
COPY policies /opt/lab/policies
ENV LAB_MODE=production \
    LAB_DATA_DIR=/tmp/lab \
    PYTHONUNBUFFERED=1
USER 10001
EXPOSE 8181
HEALTHCHECK --interval=30s --timeout=3s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8181/healthz', timeout=2)"
CMD ["uvicorn", "--factory", "lab.api.main:app_factory", "--host", "0.0.0.0", "--port", "8181", \
     "--proxy-headers", "--forwarded-allow-ips", "*", "--no-access-log"]
