"""All configuration, read once from `AGENT_SRE_*` environment variables (or a .env file)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from yarl import URL

from .errors import ConfigError
from .schemas.decision import Undecided
from .schemas.events import APPROVAL_ANSWER_TYPES, DEFAULT_EVENT_TYPE, RESULT_TYPE  # noqa: F401 (re-exported)

# The model selectors decide what they are sure of; `ai` abstains until AGENT_SRE_AI_URL is set.
# rag and fewshot before trm: on source projects none of them learned from, the TRM's sure
# `escalate` cut off actions the retrievers got right, and as the second kind of evidence after
# them it confirms or vetoes what they propose (benchmarks/bench_real.py --loso --order).
DEFAULT_SELECTORS = ["static", "known", "rag", "fewshot", "trm", "ai", "rules"]
CommaList = Annotated[list[str], NoDecode]


class SelectorOptions(BaseModel):
    """Per-selector overrides, e.g. AGENT_SRE_SELECTOR_OPTIONS='{"trm": {"threshold": 0.8}}'."""

    timeout_s: float | None = Field(default=None, gt=0)
    threshold: float | None = Field(default=None, ge=0, le=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="AGENT_SRE_", env_file=".env", extra="ignore", env_nested_delimiter="__"
    )

    # Broker
    amqp_url: SecretStr | None = None
    amqp_url_file: Path | None = None
    input_exchange: str = "agent-sre.alerts"
    input_exchange_type: str = "headers"
    input_queue: str = "agent-sre.alerts"
    output_exchange: str = "agent-sre.triggers"
    output_exchange_type: str = "headers"
    # An unroutable trigger (nothing bound to the output exchange) counts as a failed publish.
    output_mandatory: bool = True
    prefetch: int = Field(default=32, ge=1)
    concurrency: int = Field(default=16, ge=1)
    # Quorum-queue delivery limit: a message requeued this often (crash loops) is dead-lettered.
    delivery_limit: int = Field(default=20, ge=1)

    # Input
    accepted_types: CommaList = [DEFAULT_EVENT_TYPE]
    max_event_bytes: int = Field(default=1_048_576, ge=1024)

    # HTTP ingress
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    http_token: SecretStr | None = None
    http_token_file: Path | None = None
    # Slow clients: seconds for a request head (and an idle keep-alive), then for its body; open connections.
    http_header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    http_body_timeout_s: float = Field(default=30.0, gt=0, le=600)
    http_max_connections: int = Field(default=100, ge=1, le=10_000)

    # Selection
    selectors: CommaList = DEFAULT_SELECTORS
    selector_timeout_s: float = Field(default=2.0, gt=0)
    selector_threshold: float = Field(default=0.7, ge=0, le=1)
    # NoDecode: bad JSON then fails validation with the variable's name instead of a bare SettingsError.
    selector_options: Annotated[dict[str, SelectorOptions], NoDecode] = {}
    catalog_path: Path | None = None
    # rag and fewshot: embeddings of the runbook and of the examples, keyed by a hash of their text.
    retrieval_cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "agent-sre")
    fewshot_k: int = Field(default=7, ge=1)  # neighbours that vote
    fewshot_examples_per_pattern: int = Field(default=8, ge=1)  # generated training alerts per runbook name
    denied_namespaces: CommaList = ["kube-system", "kube-public", "kube-node-lease"]
    # Safety gates (agent_sre/selectors/gates.py). The confidence a proposal needs, by its function's
    # catalog risk, on top of its selector's own threshold:
    risk_thresholds: Annotated[dict[str, float], NoDecode] = {"none": 0.7, "low": 0.75, "medium": 0.8, "high": 0.9}
    # Functions of these risks act only when two selectors agree, or a static annotation names them.
    agreement_risks: CommaList = ["medium", "high"]
    # A second selector confirms such a proposal (the first at its full thresholds) when it rests on
    # another kind of evidence and proposes the same function and values at least this sure: two
    # independent readings that agree are evidence neither needs to be certain of alone.
    agreement_min_confidence: float = Field(default=0.5, ge=0, le=1)
    # An alert no selector was confident about: `escalate` (a trigger for the on-call human, with what
    # the selectors thought) or `dead-letter` (the input goes to the DLQ as `no_decision`, as before).
    undecided: Undecided = Undecided.ESCALATE
    # Alerts that need nobody: acked, audited and counted as ignored; never escalated or dead-lettered.
    ignored_alerts: CommaList = ["Watchdog", "InfoInhibitor", "PrometheusAlertmanagerE2eDeadManSwitch"]
    # Info-severity alerts whose name matches are success or progress events, ignored too ("" turns it off).
    ignored_info_events: str = (
        r"(succeeded|success|progressing|uptodate|newartifact|completed|dependencynotready|driftcorrected"
        r"|healthcheckcanceled|pendingrelease|rebalancing|relocatingshards|initializingshards|backonline)$"
    )

    # Stateful data services (agent_sre/selectors/stateful.py): these functions are refused, whatever
    # a selector proposes (a static annotation excepted), for an alert whose name or one of
    # `stateful_labels` has a word of `stateful_services`, or whose namespace matches a glob of
    # `operator_namespaces`. Words match whole words of the name and values (`mongo-rs0-1` reads `mongo`).
    stateful_functions: CommaList = ["pod-restart", "deployment-rollout-restart", "scale-pod"]
    stateful_services: CommaList = [
        # relational and SQL
        "postgres", "postgresql", "pg", "pgbouncer", "patroni", "spilo", "cnpg", "cloudnativepg", "timescaledb",
        "citus", "mysql", "mariadb", "galera", "percona", "pxc", "xtradb", "vitess", "tidb", "tikv", "mssql",
        "sqlserver", "oracle", "cockroach", "cockroachdb", "crdb", "yugabyte", "yugabytedb", "db", "database",
        # documents, key-value, caches with state
        "mongo", "mongodb", "mongod", "mongos", "redis", "valkey", "keydb", "dragonfly", "memcached", "couchdb",
        "couchbase", "arangodb", "rethinkdb",
        # search, wide-column, graph, time series, vectors
        "elasticsearch", "opensearch", "solr", "cassandra", "scylla", "scylladb", "clickhouse", "neo4j", "dgraph",
        "influxdb", "questdb", "druid", "pinot", "milvus", "qdrant", "weaviate", "hbase",
        # queues and streams
        "kafka", "strimzi", "zookeeper", "zk", "rabbitmq", "activemq", "artemis", "pulsar", "bookkeeper", "nats",
        "jetstream", "emqx", "mosquitto", "mq",
        # coordination and secrets
        "etcd", "consul", "vault",
        # storage
        "minio", "ceph", "rook", "osd", "longhorn", "openebs", "portworx", "glusterfs", "seaweedfs", "hdfs",
        "namenode", "datanode", "nfs",
    ]
    stateful_labels: CommaList = [
        "statefulset", "deployment", "daemonset", "replicaset", "pod", "container", "app", "app.kubernetes.io/name",
        "app_kubernetes_io_name", "label_app_kubernetes_io_name", "app_kubernetes_io_instance", "label_app", "k8s_app",
        "job", "job_name", "service", "name", "owner_name", "created_by_name", "exported_pod", "exported_container",
        "exported_job", "exported_service", "namespace", "exported_namespace",
    ]
    # Namespaces an operator owns (globs); kube-system and the other denied ones are refused already.
    operator_namespaces: CommaList = [
        "openshift", "openshift-*", "kubevirt", "*-operator", "*-operators", "operators", "olm", "cattle-*",
        "calico-system", "tigera-operator", "istio-system", "gatekeeper-system",
    ]

    # LLM selector (`ai`): off while ai_url is unset. Its chain timeout defaults to what its
    # attempts and backoffs can take; AGENT_SRE_SELECTOR_OPTIONS='{"ai": {"timeout_s": 30}}' overrides.
    ai_url: str | None = None  # base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:11434
    ai_model: str = "default"
    ai_api_key: SecretStr | None = None
    ai_api_key_file: Path | None = None
    ai_timeout_s: float = Field(default=10.0, gt=0)  # per HTTP attempt
    ai_max_retries: int = Field(default=2, ge=0)
    ai_backoff_s: float = Field(default=0.5, gt=0)
    ai_breaker_failures: int = Field(default=5, ge=1)
    ai_breaker_reset_s: float = Field(default=30.0, gt=0)

    # Failures
    retry_max_attempts: int = Field(default=5, ge=1)
    retry_base_delay_s: float = Field(default=1.0, gt=0)
    retry_max_delay_s: float = Field(default=60.0, gt=0)

    # What a decision leads to: `act` publishes the trigger; `shadow` decides, limits, audits and
    # counts the same, but publishes `io.homelab.agent-sre.lambda.proposed` instead, so nothing acts.
    # A catalog function's own `mode` overrides this one (trust one function at a time).
    mode: Literal["act", "shadow"] = "act"
    # Functions of this risk or above (none by default) wait for a human's approval before they act;
    # so does a catalog function with `mode: approve`. Requests are held in Redis (AGENT_SRE_REDIS_URL)
    # and, unanswered for approval_ttl_s, end in escalate.
    approval_risk: Literal["low", "medium", "high"] | None = None
    approval_ttl_s: float = Field(default=3600.0, gt=0)
    # After this many remediations of one alert fingerprint that did not resolve it (or once its
    # function reported `failed`), the alert's next decision is `escalate`.
    max_attempts_per_alert: int = Field(default=2, ge=1)
    # Off unless set, e.g. http://alertmanager:9093: while a remediation runs (the cooldown), silence
    # its alert's exact labels there; expire the silence when the alert resolves or the function fails.
    alertmanager_url: str | None = None
    alertmanager_timeout_s: float = Field(default=5.0, gt=0)
    outcome_ttl_s: float = Field(default=86_400.0, gt=0)  # how long a remediation waits for its outcome

    # Rate limits, loop prevention and storm caps. Without a Redis URL the state is per process
    # (each replica keeps its own); with one, every replica shares it.
    rate_limit_burst: int = Field(default=5, ge=1)
    rate_limit_per_minute: float = Field(default=2.0, gt=0)
    cooldown_s: float = Field(default=600.0, ge=0)
    dedup_ttl_s: float = Field(default=86_400.0, gt=0)
    # Active remediations (anything but escalate), fleet-wide per minute and per message. Past
    # either, an alert is suppressed as `storm`, and one escalate per storm window tells a human.
    storm_per_minute: int = Field(default=30, ge=1)
    storm_per_message: int = Field(default=10, ge=1)
    storm_window_s: float = Field(default=600.0, gt=0)
    redis_url: SecretStr | None = None  # e.g. redis://redis:6379/0
    redis_url_file: Path | None = None
    redis_prefix: str = Field(default="agent-sre", min_length=1)  # keys: {<prefix>}:...
    redis_timeout_s: float = Field(default=2.0, gt=0)
    # How long a replica's claim on an alert holds while it publishes: a replica killed mid-publish
    # blocks that alert for at most this long. Must exceed the broker's confirm time.
    claim_ttl_s: float = Field(default=45.0, gt=0)

    # Remediation functions (`agent-sre functions serve|consume`, agent_sre/functions). Triggers come
    # from output_exchange, results go to input_exchange; the Kubernetes API is found in-cluster,
    # else through KUBECONFIG.
    functions: CommaList = []  # the functions this process runs; empty: every one in the catalog
    functions_queue: str = "agent-sre.functions"  # `consume`: its quorum queue (one per function set)
    functions_dry_run: bool = False  # server-side dry run (dryRun=All) for every write
    functions_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    functions_timeouts: Annotated[dict[str, float], NoDecode] = {}  # per function, e.g. {"job-retry": 30}
    # A run's claim (one per correlation id and function) is kept this long, and an older trigger is
    # refused as a replay. At most AGENT_SRE_COOLDOWN_S, so that the worker's next attempt at an
    # alert that still fires, published after its cooldown, is acted on.
    functions_idempotency_ttl_s: float = Field(default=600.0, gt=0)
    functions_max_replicas: int = Field(default=10, ge=1, le=1000)  # scale-pod never goes above it
    # flux-reconcile-*: how long to wait for the controller to handle the request, as flux does (0: no wait).
    functions_flux_wait_s: float = Field(default=50.0, ge=0)
    # flux-reconcile-kustomization|helmrelease reconcile the source first (`flux reconcile --with-source`);
    # needs get/patch on Flux's source kinds, granted only with deploy/kubernetes/components/flux-with-source.
    functions_flux_with_source: bool = False
    functions_namespace: str = "agent-sre"  # where node-disk-cleanup creates its Jobs
    # check-pvc-status reads a volume's usage from the kubelet's stats summary, through `get nodes/proxy`,
    # which opens the whole kubelet API of every node: off, it never calls it and says usage is off.
    # The rule is granted only with deploy/kubernetes/components/kubelet-stats.
    functions_kubelet_stats: bool = False
    # `functions serve`: POST / wants `Authorization: Bearer <it>` (not the worker's token: who may
    # send the worker alerts may not thereby send triggers). Unset: open, as Knative delivers.
    functions_http_token: SecretStr | None = None
    functions_http_token_file: Path | None = None
    node_cleanup_image: str = "busybox:1.37"
    # Run with /host<path> mounted for each of node_cleanup_paths; no alert text reaches it.
    node_cleanup_command: Annotated[list[str], NoDecode] = [
        "sh", "-c", "find /host/var/log -xdev -type f -name '*.gz' -mtime +3 -print -delete"]
    node_cleanup_paths: CommaList = ["/var/log"]
    escalate_webhook_url: SecretStr | None = None  # Slack-compatible or generic JSON; unset: acknowledge
    escalate_webhook_url_file: Path | None = None
    escalate_webhook_format: Literal["slack", "json"] = "slack"
    # Shared key for results: functions sign `lambda.result` (HMAC-SHA256), the worker refuses
    # unsigned or forged ones. Unset or empty (an optional Secret key, compose's `${VAR:-}`):
    # results are taken unsigned, by the worker and the functions alike.
    result_key: SecretStr | None = None
    result_key_file: Path | None = None

    @property
    def inbound_types(self) -> list[str]:
        """The CloudEvent types taken in: the accepted alert types, the functions' results and the
        answers to approval requests."""
        return [*self.accepted_types, RESULT_TYPE, *APPROVAL_ANSWER_TYPES]

    # Observability
    audit_log: Path | None = None  # None: audit records go to stdout with the logs
    log_level: str = "INFO"

    @field_validator(
        "accepted_types", "selectors", "denied_namespaces", "agreement_risks", "ignored_alerts", "stateful_functions",
        "stateful_services", "stateful_labels", "operator_namespaces", "functions", "node_cleanup_paths", mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("node_cleanup_command", mode="before")
    @classmethod
    def _json_list(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f'must be a JSON list such as ["sh", "-c", "..."]: {exc}') from exc
        return value

    @field_validator("selector_options", "risk_thresholds", "functions_timeouts", mode="before")
    @classmethod
    def _parse_json(cls, value: object) -> object:
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(f'must be a JSON object such as {{"trm": {{"threshold": 0.8}}}}: {exc}') from exc
        return value

    @field_validator("result_key", "functions_http_token", mode="before")
    @classmethod
    def _empty_key_is_no_key(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("risk_thresholds")
    @classmethod
    def _every_risk(cls, value: dict[str, float]) -> dict[str, float]:
        risks = {"none", "low", "medium", "high"}
        if set(value) != risks or not all(0 <= v <= 1 for v in value.values()):
            raise ValueError(f"must give a confidence between 0 and 1 for each of {sorted(risks)}")
        return value

    @field_validator("ignored_info_events")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"is not a regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _read_secret_files(self) -> Settings:
        if self.amqp_url_file is not None:
            self.amqp_url = SecretStr(_read_secret(self.amqp_url_file, "AGENT_SRE_AMQP_URL_FILE"))
        if self.http_token_file is not None:
            self.http_token = SecretStr(_read_secret(self.http_token_file, "AGENT_SRE_HTTP_TOKEN_FILE"))
        if self.redis_url_file is not None:
            self.redis_url = SecretStr(_read_secret(self.redis_url_file, "AGENT_SRE_REDIS_URL_FILE"))
        if self.ai_api_key_file is not None:
            self.ai_api_key = SecretStr(_read_secret(self.ai_api_key_file, "AGENT_SRE_AI_API_KEY_FILE"))
        if self.escalate_webhook_url_file is not None:
            self.escalate_webhook_url = SecretStr(
                _read_secret(self.escalate_webhook_url_file, "AGENT_SRE_ESCALATE_WEBHOOK_URL_FILE"))
        if self.functions_http_token_file is not None:
            self.functions_http_token = SecretStr(
                _read_secret(self.functions_http_token_file, "AGENT_SRE_FUNCTIONS_HTTP_TOKEN_FILE"))
        if self.result_key_file is not None:
            self.result_key = SecretStr(_read_secret(self.result_key_file, "AGENT_SRE_RESULT_KEY_FILE"))
        return self

    def require_amqp_url(self) -> str:
        if self.amqp_url is None or not self.amqp_url.get_secret_value():
            raise ConfigError(
                "no broker configured: set AGENT_SRE_AMQP_URL (e.g. amqp://guest:guest@127.0.0.1:5672/) "
                "or AGENT_SRE_AMQP_URL_FILE to a file holding it"
            )
        url = self.amqp_url.get_secret_value()
        if problem := _amqp_url_problem(url):
            raise ConfigError(
                f"AGENT_SRE_AMQP_URL(_FILE) is not a broker URL: {problem}. Expected amqp://USER:PASSWORD@HOST[:PORT][/VHOST] "
                "(or amqps://), with / @ : % # ? and spaces in the user or password percent-encoded (/ as %2F, "
                "space as %20)"
            )
        return url

    def selector_timeout(self, name: str, selector_default: float | None = None) -> float:
        """The per-selector option, else the selector's own default, else AGENT_SRE_SELECTOR_TIMEOUT_S."""
        options = self.selector_options.get(name)
        if options and options.timeout_s:
            return options.timeout_s
        return selector_default or self.selector_timeout_s

    def selector_min_confidence(self, name: str, selector_default: float | None = None) -> float:
        """The per-selector option, else the selector's own default, else AGENT_SRE_SELECTOR_THRESHOLD."""
        options = self.selector_options.get(name)
        if options and options.threshold is not None:
            return options.threshold
        return selector_default if selector_default is not None else self.selector_threshold


def _amqp_url_problem(url: str) -> str | None:
    """What is wrong with a broker URL, in words that never repeat its password; None if nothing."""
    try:
        parsed = URL(url)
        port = parsed.port
    except ValueError:
        return "it cannot be parsed (an unencoded / or @ in the password, or a bad port?)"
    if parsed.scheme not in ("amqp", "amqps"):
        return f"the scheme is {parsed.scheme or 'missing'!r}, not amqp or amqps"
    if not parsed.host:
        return "it names no host"
    if port is not None and not 0 < port < 65536:
        return f"port {port} is out of range"
    if " " in url.split("@")[0]:
        return "the user or password holds an unencoded space"
    return None


def _read_secret(path: Path, variable: str) -> str:
    try:
        secret = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{variable}={path} cannot be read: {exc.strerror}") from exc
    if not secret:
        # An empty token file must not quietly turn authentication off (nor an empty URL file mean
        # "no broker"): the mounted secret is missing its key, or was written empty.
        raise ConfigError(f"{variable}={path} is empty: put the secret in it, or unset {variable}")
    return secret
