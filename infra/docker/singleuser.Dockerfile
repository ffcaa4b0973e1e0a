# The operators' notebook server: JupyterLab with the `lab` client and the example notebooks.
# It holds no credential of any kind: the Hub injects LAB_API_URL and the server's own Hub token
# (JUPYTERHUB_API_TOKEN) at spawn; the NetworkPolicy lets it reach only the lab API (and the Hub).
#   docker build -f infra/docker/singleuser.Dockerfile -t lab-singleuser:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY lab lab
COPY psi_service psi_service
COPY he_compute he_compute
RUN pip install --no-cache-dir --prefix=/install -c constraints.txt ".[channels]" \
      "jupyterlab>=4,<5" "matplotlib>=3.8,<4" "jupyterhub>=5,<7"

FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends fonts-noto-cjk tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 1000 --create-home --shell /bin/bash jovyan
COPY --from=build /install /usr/local
# no news or update pop-ups: notebook pods have no route to the Internet
RUN mkdir -p /usr/local/share/jupyter/lab/settings && printf '%s\n' \
  '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' \
  > /usr/local/share/jupyter/lab/settings/overrides.json
COPY notebooks/*.ipynb /opt/lab/notebooks/
COPY infra/docker/singleuser-start.sh /usr/local/bin/lab-singleuser-start
ENV PYTHONUNBUFFERED=1 HOME=/home/jovyan
USER 1000
WORKDIR /home/jovyan
EXPOSE 8888
ENTRYPOINT ["tini", "--", "lab-singleuser-start"]
CMD ["jupyterhub-singleuser"]
