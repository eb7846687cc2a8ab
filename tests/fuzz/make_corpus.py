#!/usr/bin/python3
"""make_corpus.py -- writes the seed corpora of tests/fuzz/corpus/<target>/
(small real examples of each input; run once, the output is committed).
Usage: tests/fuzz/make_corpus.py"""

import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "daemon"))
from e2dtest import M, small_spec  # noqa: E402  (message classes from proto/)

OUT = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


SPEC = {
    "name": "tiny",
    "labels": {"team": "nlp"},
    "device": "cpu",
    "num_workers": 1,
    "model": {"config": {"hidden_size": 32, "num_hidden_layers": 1,
                         "num_attention_heads": 2, "intermediate_size": 64,
                         "vocab_size": 256, "max_position_embeddings": 64}},
    "data": {"train_shards": ["/data/train_*.bin"],
             "eval_shards": ["/data/val_000.bin"]},
    "augment": {"method": "e2", "g_max": 4, "n_sink": 4, "train_length": 128},
    "train": {"steps": 10, "global_batch": 4, "lr": 3e-4, "schedule": "cosine"},
    "checkpoint": {"every": 5, "keep_last": 2},
    "eval": {"windows": [64, 128], "passkey_trials": 2},
}


def spec_corpus():
    put("spec", "full.json", json.dumps(SPEC, indent=2))
    put("spec", "minimal.json", json.dumps({
        "name": "m", "model": {"hf_dir": "/models/llama"},
        "data": {"train_shards": ["a.bin"]}}))
    camel = {"name": "c", "augment": {"gMax": 8, "gWeights": [1, 2, 3],
                                      "fixedG": "Infinity"},
             "train": {"seed": "18446744073709551615", "lr": "NaN"}}
    put("spec", "camel_strings.json", json.dumps(camel))
    put("spec", "set.txt", "--set train.lr=1e-4\n--set labels.owner=ana\n"
        "--set eval.windows=64,256\n" + json.dumps(SPEC))
    put("spec", "passkey.json", json.dumps(dict(SPEC, eval={
        "windows": [64], "passkey_trials": 4, "passkey_digits": 3,
        "filler_tokens": [5, 6, 7], "prompt_prefix_tokens": [1],
        "prompt_suffix_tokens": [2], "digit_tokens": list(range(10, 20)),
        "passkey_depth_buckets": 2})))


def safetensors_file(tensors, metadata=None):
    """tensors: [(name, dtype, shape, raw bytes)] in data order."""
    header, off = {}, 0
    for name, dt, shape, raw in tensors:
        header[name] = {"dtype": dt, "shape": shape,
                        "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(t[3] for t in tensors)


def safetensors_corpus():
    f32 = struct.pack("<4f", 1.0, -2.0, 0.5, 3.25)
    bf16 = struct.pack("<4H", 0x3F80, 0xC000, 0x7F80, 0x0001)
    f16 = struct.pack("<2H", 0x3C00, 0x7C00)
    put("safetensors", "single", b"\x00" + safetensors_file(
        [("model.norm.weight", "F32", [4], f32),
         ("lm_head.weight", "BF16", [2, 2], bf16),
         ("x", "F16", [2], f16)], {"format": "pt"}))
    put("safetensors", "scalar", b"\x00" + safetensors_file(
        [("s", "F32", [], struct.pack("<f", 7.0))]))
    put("safetensors", "index", b"\x01" + json.dumps({
        "metadata": {"total_size": 16},
        "weight_map": {"a": "model-00001-of-00002.safetensors",
                       "b": "model-00002-of-00002.safetensors"}}).encode())
    put("safetensors", "config", b"\x02" + json.dumps({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_act": "silu", "hidden_size": 64, "intermediate_size": 128,
        "num_attention_heads": 4, "num_key_value_heads": 2,
        "num_hidden_layers": 2, "vocab_size": 256,
        "max_position_embeddings": 128, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "tie_word_embeddings": False,
        "torch_dtype": "bfloat16", "bos_token_id": 1, "eos_token_id": [2, 3],
        "rope_scaling": {"type": "linear", "factor": 2.0}}).encode())


def shard_corpus():
    def shard(magic, version, tokens, width):
        hdr = [0] * 256
        hdr[0], hdr[1], hdr[2] = magic, version, len(tokens)
        fmt = "<%d%s" % (len(tokens), "H" if width == 2 else "I")
        return struct.pack("<256i", *hdr) + struct.pack(fmt, *tokens)
    put("shard", "u16", shard(20240520, 1, [1, 2, 3, 65535, 0], 2))
    put("shard", "u32", shard(20240801, 7, [7, 100000, 2**31], 4))
    put("shard", "empty", shard(20240520, 1, [], 2))


# Message index in fuzz_rpc: per service (Coordinator, then WorkerControl),
# per method in proto order, request then response.
COORD = ["SubmitJob", "GetJob", "ListJobs", "CancelJob", "WatchJob",
         "StreamLogs", "ListWorkers", "GetMetrics"]
WORKER = ["RegisterWorker", "Heartbeat", "ReportCheckpoint", "RendezvousPut",
          "RendezvousGet", "ReportDone"]
METHODS = COORD + WORKER


def rpc(name, kind, msg):
    i = METHODS.index(name) * 2 + (0 if kind == "req" else 1)
    put("rpc", "%02d_%s_%s" % (i, name, kind),
        bytes([i]) + msg.SerializeToString())


def rpc_corpus():
    spec = small_spec("seed", labels={"team": "nlp"})
    rpc("SubmitJob", "req", M("SubmitJobRequest", spec=spec, request_id="r-1"))
    job = M("Job", id="j-000001", spec=spec, state=3, reason="assigned",
            attempt=1, step=4, total_steps=10, loss=2.5,
            checkpoints=[M("Checkpoint", step=2, path="/s/jobs/j/ckpt/step_2")],
            eval=[M("EvalResult", window=64, scale=1.0, loss=2.0,
                    perplexity=7.39, tokens=100)],
            worker_ids=["w-1"])
    rpc("SubmitJob", "resp", M("SubmitJobResponse", job=job, created=True))
    rpc("GetJob", "req", M("GetJobRequest", id="j-000001"))
    rpc("GetJob", "resp", M("GetJobResponse", job=job))
    rpc("ListJobs", "req", M("ListJobsRequest", states=[1, 3],
                             labels=["team=nlp"], page_size=10,
                             page_token="j-000001"))
    rpc("CancelJob", "req", M("CancelJobRequest", id="j-000001"))
    rpc("WatchJob", "req", M("WatchJobRequest", id="j-000001"))
    rpc("StreamLogs", "req", M("StreamLogsRequest", id="j-000001"))
    rpc("ListWorkers", "req", M("ListWorkersRequest"))
    rpc("GetMetrics", "req", M("GetMetricsRequest", id="j-000001",
                               since_step=2))
    prog = M("Progress", job_id="j-000001", attempt=1, rank=0, step=3,
             total_steps=10, loss=2.25, lr=1e-4, grad_norm=0.5,
             tokens_per_second=1000.0, time_unix_ms=1700000000000)
    rpc("RegisterWorker", "req", M("RegisterWorkerRequest", hostname="node1",
                                   device="cpu", pid=42, version="e2worker",
                                   previous_worker_id="w-1", running=prog))
    rpc("RegisterWorker", "resp", M("RegisterWorkerResponse", worker_id="w-2",
                                    heartbeat_interval_ms=1000,
                                    heartbeat_timeout_ms=10000))
    rpc("Heartbeat", "req", M("HeartbeatRequest", worker_id="w-1", state=2,
                              progress=prog, log_lines=["step 3 loss 2.25"]))
    asg = M("Assignment", job_id="j-000001", attempt=1, rank=0, world_size=1,
            spec=spec, job_dir="/s/jobs/j-000001",
            resume_checkpoint="/s/jobs/j-000001/checkpoints/step_2",
            start_step=2,
            train_shards=[M("ShardFile", path="/data/train_000.bin",
                            bytes=2048)])
    rpc("Heartbeat", "resp", M("HeartbeatResponse", commands=[
        M("Command", assignment=asg),
        M("Command", cancel=M("Cancel", job_id="j-000001", attempt=1,
                              deadline_unix_ms=1700000005000)),
        M("Command", abort=M("Abort", job_id="j-000001", attempt=1,
                             reason="rank 1 lost"))]))
    rpc("ReportCheckpoint", "req", M(
        "ReportCheckpointRequest", worker_id="w-1", job_id="j-000001",
        attempt=1, rank=0, step=5,
        files=[M("CheckpointFile", name="model.safetensors", size=1024,
                 sha256="ab" * 32)]))
    rpc("ReportCheckpoint", "resp", M("ReportCheckpointResponse",
                                      committed=True, path="/s/c/step_5"))
    rpc("RendezvousPut", "req", M("RendezvousPutRequest", worker_id="w-1",
                                  job_id="j-000001", attempt=1, key="gloo/0",
                                  value=b"\x00\x01addr"))
    rpc("RendezvousGet", "req", M("RendezvousGetRequest", worker_id="w-1",
                                  job_id="j-000001", attempt=1, key="gloo/0",
                                  wait_ms=1000))
    rpc("RendezvousGet", "resp", M("RendezvousGetResponse", found=True,
                                   value=b"addr"))
    rpc("ReportDone", "req", M(
        "ReportDoneRequest", worker_id="w-1", job_id="j-000001", attempt=1,
        rank=0, outcome=1, exit_code=0, reason="done",
        eval=[M("EvalResult", window=64, scale=1.0, loss=2.0,
                perplexity=7.39, tokens=100, passkey_trials=2,
                passkey_correct=1)],
        eval_json='{"windows": [64]}', log_lines=["done"]))


def conf_corpus():
    for name in ("e2d.conf", "worker.conf"):
        with open(os.path.join(ROOT, "deploy", "etc", name), "rb") as f:
            put(name.replace(".conf", "_conf").replace("e2d_conf", "e2d_conf"),
                "deploy_" + name, f.read())
    put("e2d_conf", "flags.conf",
        "listen = 127.0.0.1:7070\ninsecure = yes\nlocal-workers = 2\n"
        "heartbeat-timeout = 2.5\nhang-timeout = 0\n"
        "http-listen = 127.0.0.1:0\nhttp-metrics-public = yes\n"
        "gpu-mem = 80 # GB\n")
    put("worker_conf", "flags.conf",
        "coordinator = unix:/run/e2/e2d.sock\ndevice = cuda\n"
        "device-index = 1\nenv.NCCL_DEBUG = INFO\n")
    tok = "0123456789abcdef0123456789abcdef"
    put("token_file", "roles",
        "Bearer %s\n# tokens\n%s alice submitter\n%s bob viewer\n"
        "%s node-1 worker\n%s root admin\n\n"
        % (tok, tok, tok[::-1], "f" * 20 + "0" * 12, "9" * 40))
    put("token_file", "bare", tok + "\n")


if __name__ == "__main__":
    spec_corpus()
    safetensors_corpus()
    shard_corpus()
    rpc_corpus()
    conf_corpus()
