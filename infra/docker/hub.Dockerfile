# JupyterHub with the lab's configuration (infra/jupyterhub/jupyterhub_config.py), its authenticators
# (lab.launcher.auth), DockerSpawner and KubeSpawner, the idle culler and configurable-http-proxy.
#   docker build -f infra/docker/hub.Dockerfile -t lab-hub:0.1.0 .
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm \
 && npm install -g configurable-http-proxy@5 && npm cache clean --force \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /srv/lab
COPY pyproject.toml constraints.txt README.md ./
COPY lab lab
COPY psi_service psi_service
COPY he_compute he_compute
COPY infra/jupyterhub infra/jupyterhub
RUN pip install --no-cache-dir -c constraints.txt . \
      "oauthenticator>=16,<18" "jupyterhub-nativeauthenticator>=1.3,<2" "jupyterhub-idle-culler>=1.4,<3" \
      "dockerspawner>=13" "jupyterhub-kubespawner>=7" "psycopg2-binary>=2.9"
ENV LAB_HUB_VARIANT=production LAB_DATA_DIR=/srv/lab/var PYTHONUNBUFFERED=1
# runs as root only to reach the Docker socket (DockerSpawner); on Kubernetes the chart runs it unprivileged
RUN mkdir -p /srv/lab/var
EXPOSE 8000 8081
CMD ["jupyterhub", "-f", "/srv/lab/infra/jupyterhub/jupyterhub_config.py"]
