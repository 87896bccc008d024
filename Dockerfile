# The image the Helm chart runs (helm/kommons: `kommons hub` or `kommons agent`).
# Python and the dependencies are the ones pyproject.toml pins; build from the repository root:
#   docker build -t ghcr.io/kommons/kommons:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/kommons ./operator/kommons
COPY hack/testbed/kommons_testbed ./hack/testbed/kommons_testbed
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN groupadd --gid 10001 kommons && useradd --uid 10001 --gid 10001 --no-create-home kommons
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels kommons && rm -rf /wheels
USER 10001:10001
# The chart mounts configs and keys read-only and sets readOnlyRootFilesystem.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
EXPOSE 8080
ENTRYPOINT ["kommons"]
CMD ["--help"]
