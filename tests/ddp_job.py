"""A job for tests/test_distributed_and_launch.py: ESPnet's multiprocessing-distributed training
on CPU, dispatched through the recipe's job engine.

ESPnet's AbsTask.main spawns ``cls.main_worker`` once per GPU and turns this mode off for
``--ngpu <= 1``; here the same spawn (torch's "spawn" context, the task class pickled by
reference, so each worker re-imports espnet_ssvd.bin.asr_train) runs 2 ranks over gloo on CPU.
"""

import argparse
import socket
import time

import torch

from espnet_ssvd.bin.asr_train import AdapterASRTask


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def distributed_training(cmd: list[str], world_size: int = 2) -> None:
    args = AdapterASRTask.get_parser().parse_args(cmd)
    args.distributed, args.multiprocessing_distributed = True, True
    args.dist_backend, args.dist_init_method = "gloo", "env://"
    args.dist_master_addr, args.dist_master_port = "localhost", free_port()
    args.dist_world_size, args.ngpu = world_size, 0
    context = torch.multiprocessing.get_context("spawn")
    processes = []
    for rank in range(world_size):
        local = argparse.Namespace(**vars(args))
        # ESPnet checks a local rank against the visible GPUs; CPU ranks have none.
        local.local_rank, local.dist_rank = None, rank
        processes.append(context.Process(target=AdapterASRTask.main_worker, args=(local,)))
        processes[-1].start()
    # As ESPnet's ProcessContext: one rank failing ends the others (they would wait for it forever).
    while any(p.is_alive() for p in processes):
        if any(p.exitcode for p in processes):
            for p in processes:
                p.terminate()
        time.sleep(0.5)
    codes = [p.exitcode for p in processes]
    if any(codes):
        raise RuntimeError(f"distributed ranks exited with {codes}")
