# syntax=docker/dockerfile:1
# sts-agent: one image for the init container (`init`) and the sidecar (`run`).
# Build: docker build -t sts-agent:0.1.0 .
# Galera's init container also runs `mariadbd --wsrep-recover` (a crashed node's position
# is in InnoDB): docker build --target galera-init -t sts-agent-galera:0.1.0 .
# The exec store's Galera example runs its hooks and mariadbd in one container, under tini:
# docker build --target exec-galera -t sts-agent-exec-galera:0.1.0 .
#
# The build stage uses Debian 12's own Python, the one the distroless runtime carries at
# the same path, so the virtualenv's interpreter link and the console script's shebang
# resolve at runtime without a shell.
FROM debian:12.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3=3.11.2-1+b1 python3-venv=3.11.2-1+b1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY agent ./agent
# Behind a proxy with its own CA, pass its bundle as a build secret (never a layer):
# docker build --secret id=pip-ca,src=/path/to/ca-bundle.crt .
RUN --mount=type=secret,id=pip-ca,required=false \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \
    && python3 -m venv /opt/sts-agent \
    && /opt/sts-agent/bin/pip install --no-cache-dir --no-compile -c constraints.txt . \
    && /opt/sts-agent/bin/python -m compileall -q /opt/sts-agent/lib \
    && rm -rf /opt/sts-agent/bin/pip* /opt/sts-agent/lib/python3.11/site-packages/pip

# The agent beside Debian 12's mariadbd and galera-4 (the versions the tests run), as the
# MariaDB image's mysql user (uid 999), whose files the data volume holds.
FROM debian:12.11-slim AS galera-init
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3=3.11.2-1+b1 \
        mariadb-server-core=1:10.11.19-0+deb12u1 galera-4=26.4.23-0+deb12u1 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/sts-agent /opt/sts-agent
ENV PATH=/opt/sts-agent/bin:/usr/sbin:/usr/bin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 999:999
ENTRYPOINT ["sts-agent"]
CMD ["--help"]

# The agent, tini, and what k8s/exec-galera's hooks run: mariadbd with galera-4, the
# client, and rsync for full copies; as the mysql user (uid 999). tini is PID 1: it reaps
# what the hooks leave behind and hands SIGTERM to the agent, which stops mariadbd.
FROM debian:12.11-slim AS exec-galera
# The mysql user is made first with the MariaDB image's ids, so Debian's package keeps it
# (it would make one with a free system uid): the hooks reach mariadbd over its socket as
# this OS user, whose name unix_socket authentication needs.
RUN groupadd --system --gid 999 mysql \
    && useradd --system --uid 999 --gid 999 --home-dir /var/lib/mysql --no-create-home \
        --shell /usr/sbin/nologin mysql \
    && apt-get update \
    && apt-get install -y --no-install-recommends python3=3.11.2-1+b1 \
        mariadb-server=1:10.11.19-0+deb12u1 mariadb-client=1:10.11.19-0+deb12u1 \
        galera-4=26.4.23-0+deb12u1 rsync=3.5.0+ds1-0+deb12u1 tini=0.19.0-1+b3 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/sts-agent /opt/sts-agent
ENV PATH=/opt/sts-agent/bin:/usr/sbin:/usr/bin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 999:999
EXPOSE 9090 3306 4567 4444 4568
ENTRYPOINT ["tini", "--", "sts-agent"]
CMD ["--help"]

# The default target: the agent alone, on distroless.
FROM gcr.io/distroless/python3-debian12:nonroot
LABEL org.opencontainers.image.title="sts-agent" \
      org.opencontainers.image.description="Init container and sidecar for raft stores in Kubernetes StatefulSets" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/sts-agent /opt/sts-agent
# Bytecode is compiled at build time: nothing is written at runtime, so the container
# runs with readOnlyRootFilesystem: true.
ENV PATH=/opt/sts-agent/bin:/usr/bin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["sts-agent"]
CMD ["--help"]
