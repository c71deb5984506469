"""The remediation functions: what acts on a trigger, and reports its result.

    trigger (CloudEvent) ─► trigger.read_trigger ─► runner.Runner.run ─► result.result_event
                                                     │ ledger: at most once per correlation id
                                                     │ trigger.check_trigger: the catalog again
                                                     └ one function (flux, pods, rollout, scale,
                                                       certificates, jobs, nodes, reports, escalate)

`agent-sre functions consume` (AMQP, `amqp.py`) and `agent-sre functions serve` (CloudEvents over
HTTP, `http.py`) feed the runner. No module here imports the worker: they share only schemas,
settings and the catalog. kube.py says why kubernetes_asyncio is the client.
"""
