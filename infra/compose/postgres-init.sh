#!/bin/sh
# One PostgreSQL for the lab, JupyterHub and Keycloak: separate databases and owners.
set -eu
psql -v ON_ERROR_STOP=1 --username postgres <<SQL
CREATE USER lab WITH PASSWORD '${POSTGRES_LAB_PASSWORD}';
CREATE DATABASE lab OWNER lab;
CREATE USER jupyterhub WITH PASSWORD '${POSTGRES_HUB_PASSWORD}';
CREATE DATABASE jupyterhub OWNER jupyterhub;
CREATE USER keycloak WITH PASSWORD '${POSTGRES_KEYCLOAK_PASSWORD}';
CREATE DATABASE keycloak OWNER keycloak;
SQL
