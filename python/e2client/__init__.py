"""e2client -- Python client of e2d (the e2 coordinator) for dashboards.

    from e2client import Client, E2Error, pb
    with Client(token_file="~/.config/e2/token") as c:
        resp = c.submit_file("job.json", request_id="nightly-42")
        for ev in c.watch(resp.job.id):
            print(pb.JobState.Name(ev.state), ev.step, ev.loss)

pb is the generated coordinator_pb2 (Job, JobEvent, JobState, ...),
job_pb the generated job_pb2 (JobSpec, ...): both generated from e2's
proto/ when the package is built (or, used straight from a checkout, when
it is imported)."""
from ._load import job_pb, pb
from .client import TERMINAL_STATES, Client, E2Error, default_target, parse_spec, read_token_file

__all__ = ["Client", "E2Error", "TERMINAL_STATES", "default_target", "job_pb", "parse_spec",
           "pb", "read_token_file"]
