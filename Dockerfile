# agent-sre: the worker (RabbitMQ consumer + HTTP ingress) on CPU only.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch first, from PyTorch's CPU-only index: the package pins torch==2.13.0, which this
# CPU build (2.13.0+cpu) already satisfies, so installing the package never pulls CUDA wheels.
# Its own layer, so code changes do not download it again.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY agent_sre ./agent_sre
RUN pip install . \
    && python -c "import torch; assert not torch.version.cuda, torch.version.cuda" \
    && useradd --system --uid 10001 --create-home --home-dir /home/agent-sre --shell /usr/sbin/nologin agent-sre

USER 10001
# The rag and fewshot embeddings of the packaged runbook and examples ship inside the package
# (agent_sre/retrieval/shipped, built by `python -m agent_sre.cli.ship_vectors`), for both
# precisions the embedder runs in, so the image works on whatever CPU runs it and a container
# with an empty cache embeds nothing at start. The build fails if the installed package's files
# do not match its texts (-P: the installed package, not /app's copy).
RUN python -P -m agent_sre.cli.ship_vectors --check
EXPOSE 8080

# Readiness, not liveness: /readyz answers 503 while the broker connection is down or the
# selectors are still loading, about 3 s on 2 cores (urlopen raises on it). slim has no curl;
# the port follows AGENT_SRE_HTTP_PORT when it is overridden.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('AGENT_SRE_HTTP_PORT', '8080'), timeout=4)" || exit 1

ENTRYPOINT ["agent-sre"]
CMD ["run"]
