# syntax=docker/dockerfile:1
# multinic-ipam: one image for the webhook Deployment and the node DaemonSet.
# Build: docker build -t ghcr.io/multinic-ipam/multinic-ipam:0.1.0 .
# BASE names the Python base image; scripts/build-image.sh passes a local Debian one (no registry).
ARG BASE=python:3.11-slim-bookworm

# Stage 1: build a wheel of the project and of its dependencies (compilers stay here).
FROM ${BASE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY allocator/ allocator/
COPY certs/ certs/
COPY cni/ cni/
COPY webhook/ webhook/
COPY devtools/ devtools/
RUN pip wheel --wheel-dir /wheels .

# Stage 2: the runtime, with nothing but Python and the wheels installed.
FROM ${BASE}
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels multinic-ipam \
    && useradd --system --uid 65532 --user-group --no-create-home --shell /usr/sbin/nologin multinic
# The webhook runs as this user; the node DaemonSet's containers override it (they need the host).
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["multinic-ipam"]
CMD ["--help"]
