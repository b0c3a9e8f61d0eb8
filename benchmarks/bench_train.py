"""Training throughput of the two published CNNs: the project's training path vs plain ``model.fit``.

Both variants train the same architecture at the same crop size and batch size, in the same
process, alternating rounds so that load from other programs hits both alike:

* ``plain``: ``keras`` stock model, ``model.fit(x, y, batch_size=...)`` on NumPy arrays (what a
  straightforward script does); no augmentation.
* ``project``: ``ctslib.severity.train`` (tf.data cache + prefetch with fixed parallelism, augmentation
  on, fused BatchNormalization and Adam kernels, settings of ``TrainSettings``).

Two "step only" lines bound what any training loop can reach: the compiled train step (forward,
backward, Adam) called in a Python loop on one fixed in-memory batch, no data pipeline and no
``fit`` machinery, for the stock model + stock Adam (``plain``'s arithmetic) and for the
project's model + ``FusedAdam``. A ratio above ``step only, project / step only, stock`` would
need ``plain`` fit to waste time outside its arithmetic.

Throughput is training images per second over steady-state epochs (the first epoch, which traces
the graph, is dropped); the reported figure per variant is the median over rounds, with the best
in brackets. On a machine shared with other work the wall-clock figures swing widely, so images
per CPU-second of this process (work done per image, much less sensitive to other load) is
printed beside them. ``--ablations`` adds single-change variants to show what each setting is worth.

Usage:
    python benchmarks/bench_train.py                    # both planes, 128 px, toy crops
    python benchmarks/bench_train.py --crops work/default/03_nerve_cropping/crops.csv
    python benchmarks/bench_train.py --planes transverse --ablations
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/hardware.py

import numpy as np  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--planes", nargs="+", default=["transverse", "longitudinal"])
    parser.add_argument("--size", type=int, default=128, help="crop size (pixels), default 128 as stage 03")
    parser.add_argument("--images", type=int, default=600, help="training images per epoch (toy crops)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per round (the first is dropped)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per variant")
    parser.add_argument("--crops", type=Path, default=None, help="use a run's crops.csv instead of toy crops")
    parser.add_argument("--ablations", action="store_true", help="also time single-change variants")
    parser.add_argument("--only", nargs="+", default=None, help="time only these variants (plain is always timed)")
    parser.add_argument("--seed", type=int, default=2026)
    return parser.parse_args(argv)


def load_frames(args, plane: str, tmp: Path):
    from ctslib.severity.inputs import read_crops, write_toy_crops

    if args.crops is not None:
        frames = read_crops(args.crops, plane)
    else:
        per_grade = 5
        frames_per_wrist = int(np.ceil(args.images / (4 * per_grade)))
        csv = write_toy_crops(tmp / plane, plane=plane, participants_per_grade=per_grade,
                              frames_per_wrist=frames_per_wrist, crop_size=args.size, seed=args.seed)
        frames = read_crops(csv, plane)
    return frames.iloc[: args.images]


def variants(plane: str, args) -> dict[str, dict]:
    """Name -> how to train: plain fit on arrays, the project's path, and optional ablations."""
    from ctslib.severity.recipe import PAPER_RECIPE
    from ctslib.severity.speed import FastPath

    bs = PAPER_RECIPE[plane].batch_size
    base = dict(plane=plane, input_size=args.size, epochs=args.epochs, batch_size=bs, verbose=0)  # else: defaults
    out = {
        "plain": {"kind": "plain", "settings": base},
        "project": {"kind": "project", "settings": base},
    }
    if args.ablations:
        out["project, stock BN"] = {"kind": "project", "settings": {**base, "fast": FastPath(fused_batch_norm=False)}}
        out["project, stock Adam"] = {"kind": "project", "settings": {**base, "fast": FastPath(fused_optimizer=False)}}
        out["project, XLA"] = {"kind": "project", "settings": {**base, "fast": FastPath(jit_compile=True)}}
        out["project, steps_per_execution=1"] = {"kind": "project", "settings": {**base, "fast": FastPath(steps_per_execution=1)}}
        out["project, mixed_bfloat16"] = {"kind": "project", "settings": {**base, "fast": FastPath(precision="mixed_bfloat16")}}
        out["project, no augmentation"] = {"kind": "project",
                                           "settings": {**base, "rotation_deg": 0.0, "horizontal_flip": False}}
        out["project, tf.data autotune on"] = {"kind": "project", "settings": base, "autotune": True}
    out["step only, stock"] = {"kind": "step", "settings": {**base, "fast": False}}
    out["step only, project"] = {"kind": "step", "settings": base}
    return out


def run_variant(spec: dict, frames, arrays, seed: int) -> list[float]:
    """Train once for ``epochs`` epochs; return (images per wall second, per CPU second) of each steady epoch."""
    import keras

    from ctslib.severity.inputs import make_dataset
    from ctslib.severity.models import build_model
    from ctslib.severity.train import EpochClock, TrainSettings, compile_model, new_model

    settings = TrainSettings(**spec["settings"])
    clock = EpochClock()
    if spec["kind"] == "step":
        return step_only(settings, arrays, seed)
    if spec["kind"] == "plain":
        keras.utils.set_random_seed(seed)
        model = build_model(settings.plane, settings.input_size)
        model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate), loss="categorical_crossentropy",
                      metrics=["accuracy"])
        x, y = arrays
        model.fit(x, y, batch_size=settings.batch_size, epochs=settings.epochs, verbose=0, callbacks=[clock])
    else:
        ds = make_dataset(frames["crop_file"], frames["grade_index"], input_size=settings.input_size,
                          batch_size=settings.batch_size, training=True, seed=seed,
                          rotation_deg=settings.rotation_deg, horizontal_flip=settings.horizontal_flip)
        if spec.get("autotune"):
            import tensorflow as tf

            options = tf.data.Options()
            options.autotune.enabled = True
            ds = ds.with_options(options)
        model = compile_model(new_model(settings, seed), settings)
        model.fit(ds, epochs=settings.epochs, verbose=0, callbacks=[clock], shuffle=False)
    return [(len(frames) / s, len(frames) / c) for s, c in zip(clock.train_s[1:], clock.train_cpu_s[1:])]


def step_only(settings, arrays, seed: int) -> list[tuple[float, float]]:
    """(images per wall second, per CPU second) of the bare compiled train step, per pseudo-epoch."""
    import keras
    import tensorflow as tf

    from ctslib.severity.train import compile_model, new_model

    model = compile_model(new_model(settings, seed), settings)
    x, y = arrays
    bs = settings.batch_size
    xb, yb = tf.constant(x[:bs]), tf.constant(y[:bs])
    loss_fn = keras.losses.CategoricalCrossentropy()
    weights = model.trainable_variables

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        model.optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
        return loss

    steps = max(len(x) // bs, 1)
    out = []
    for epoch in range(settings.epochs):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            loss = step()
        float(loss)
        if epoch:  # the first pass traces the graph
            out.append((steps * bs / (time.perf_counter() - wall), steps * bs / (time.process_time() - cpu)))
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    import keras
    import tensorflow as tf

    from ctslib.severity.inputs import read_crop_array
    from ctslib.severity.models import build_model
    from ctslib.severity.recipe import PAPER_RECIPE
    from ctslib.common.seed import set_determinism

    import hardware

    set_determinism(args.seed)
    print(hardware.isa_line())
    peak = hardware.matmul_gflops(2048)
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPU cores, "
          f"crop {args.size}px, {args.images} images/epoch, {args.epochs} epochs x {args.rounds} rounds; "
          f"float32 matmul 2048x2048: {peak:.1f} GFLOP/s", flush=True)
    results, step_flops = [], {}
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        for plane in args.planes:
            frames = load_frames(args, plane, Path(tmp))
            x = read_crop_array(frames["crop_file"], args.size)
            y = np.eye(4, dtype=np.float32)[frames["grade_index"].to_numpy()]
            params = build_model(plane, args.size).count_params()
            step_flops[plane] = hardware.train_step_flops(build_model(plane, args.size))
            specs = variants(plane, args)
            if args.only:
                specs = {k: v for k, v in specs.items() if k == "plain" or k in args.only or k.startswith("step only")}
            speeds = {name: [] for name in specs}
            for r in range(args.rounds):
                for name, spec in specs.items():
                    t = time.perf_counter()
                    speeds[name] += run_variant(spec, frames, (x, y), args.seed)
                    last = np.array(speeds[name][-(args.epochs - 1):])
                    print(f"  {plane:12s} round {r + 1}: {name:34s} {np.median(last[:, 0]):7.1f} img/s, "
                          f"{np.median(last[:, 1]):7.1f} img/CPU-s  ({time.perf_counter() - t:5.1f} s)", flush=True)
            plain = np.median(np.array(speeds["plain"]), axis=0)
            for name, values in speeds.items():
                values = np.array(values)
                med = np.median(values, axis=0)
                results.append((plane, name, PAPER_RECIPE[plane].batch_size, params, med[0], values[:, 0].max(), med[1],
                                med[0] / plain[0], med[1] / plain[1]))
    print("\nplane         variant                             batch    params  img/s (best)   img/CPU-s   vs plain: wall  CPU")
    for plane, name, bs, params, med, best, cpu, ratio, cpu_ratio in results:
        print(f"{plane:13s} {name:34s} {bs:5d} {params:9,d} {med:7.1f} ({best:6.1f}) {cpu:9.1f}"
              f"             {ratio:5.2f}x {cpu_ratio:5.2f}x")
    print(f"\nGFLOP/s of the training step (3 x forward FLOPs of the conv and dense layers per image, a lower bound) "
          f"vs the measured float32 matmul peak of {peak:.1f} GFLOP/s; {hardware.isa_line()}")
    for plane, name, _, _, med, _, _, _, _ in results:
        gflops = med * step_flops[plane] / 1e9
        print(f"  {plane:13s} {name:34s} {step_flops[plane] / 1e6:7.1f} MFLOP/image  {gflops:6.1f} GFLOP/s  "
              f"{gflops / peak:6.1%} of matmul peak")
    for row in results:
        if row[1] == "project":
            gflops = row[4] * step_flops[row[0]] / 1e9
            print(f"RATIO {row[0]}: project / plain fit = {row[7]:.2f}x wall-clock, {row[8]:.2f}x per CPU-second; "
                  f"{row[4]:.1f} img/s = {gflops:.1f} GFLOP/s = {gflops / peak:.1%} of matmul peak ({hardware.isa_in_force()})")
    by_name = {(row[0], row[1]): row for row in results}
    for plane in args.planes:
        stock, project = by_name.get((plane, "step only, stock")), by_name.get((plane, "step only, project"))
        if stock and project:
            print(f"CEILING {plane}: bare train step, project / stock = {project[4] / stock[4]:.2f}x wall-clock, "
                  f"{project[6] / stock[6]:.2f}x per CPU-second (plain fit reaches {by_name[(plane, 'plain')][4] / stock[4]:.2f}"
                  f" of the stock step's wall rate)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
