"""The article's Keras LCNN, timed on CPU: training and inference images/s on random 28x28x1 inputs.

Runs in the separate TensorFlow environment (``benchmarks/keras_env.sh`` creates ``.venv-keras``), never in
the library's environment. ``benchmarks/bench_classify.py`` runs it as a subprocess and compares it with
our PyTorch ``build_lcnn``. Prints one JSON line on stdout (everything else goes to stderr)::

    .venv-keras/bin/python benchmarks/keras_lcnn.py --threads 2 --batch-size 256

The model is the article's ``build_lcnn`` (seed/lcnn-article.txt), layer for layer. Two changes only, for
Keras 3: ``Conv2D`` is imported from ``keras.layers`` (``keras.layers.convolutional`` is gone), and the
``Maxout`` layer, which the article imports from its repository's ``layers.py`` (ozora-ogino/LCNN,
``model/layers.py``, itself taken from tensorflow_addons), is re-created below with the same channel split.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="intra- and inter-op threads (match torch)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--train-steps", type=int, default=10, help="timed training steps per repeat")
    p.add_argument("--infer-steps", type=int, default=20, help="timed inference batches per repeat")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats; the best is reported")
    p.add_argument(
        "--jit-compile",
        choices=["auto", "true", "false"],
        default="auto",
        help="Keras compile(jit_compile=...): 'auto' is what the article's compile() gets (XLA on TF when possible)",
    )
    p.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="'wall': images per second; 'cpu': images per CPU-second of this process (steadier on a busy machine)",
    )
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")

    import numpy as np
    import tensorflow as tf

    # Threads must be fixed before TensorFlow creates its thread pools (before any op runs).
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    import keras
    from keras.layers import BatchNormalization, Conv2D, Dense, Dropout, Flatten, Input, MaxPool2D
    from keras.models import Model
    from keras.optimizers import Adam

    class Maxout(keras.layers.Layer):
        """ozora-ogino/LCNN ``model/layers.py`` ``Maxout(num_units, axis=-1)`` (from tensorflow_addons):
        reshape the ``C`` channels to ``(C // num_units, num_units)`` and take the max over the first of
        the two, so output channel ``i`` is ``max(x[i], x[i + num_units])`` for ``C = 2 * num_units``,
        the same split as our ``MaxFeatureMap("2/1")`` (first half vs second half)."""

        def __init__(self, num_units: int, axis: int = -1, **kwargs):
            super().__init__(**kwargs)
            self.num_units = num_units
            self.axis = axis

        def call(self, inputs):
            shape = [d if d is not None else tf.shape(inputs)[i] for i, d in enumerate(inputs.shape)]
            axis = self.axis % len(shape)
            k = shape[axis] // self.num_units
            expand = shape[:axis] + [k, self.num_units] + shape[axis + 1 :]
            return tf.math.reduce_max(tf.reshape(inputs, expand), axis=axis)

        def compute_output_shape(self, input_shape):
            shape = list(input_shape)
            shape[self.axis] = self.num_units
            return tuple(shape)

        def get_config(self):
            return {**super().get_config(), "num_units": self.num_units, "axis": self.axis}

    # ---- the article's code (lcnn.py), unchanged apart from the imports above ----
    def MaxOutConv2D(x, dim, kernel_size, strides, padding="same"):  # noqa: N802 (article's names)
        conv_out = Conv2D(dim, kernel_size=kernel_size, strides=strides, padding=padding)(x)
        mfm_out = Maxout(int(dim / 2))(conv_out)
        return mfm_out

    def MaxOutDense(x, dim):  # noqa: N802
        dense_out = Dense(dim)(x)
        mfm_out = Maxout(int(dim / 2))(dense_out)
        return mfm_out

    def build_lcnn(shape, n_label=2):
        input = Input(shape=shape)
        conv2d_1 = MaxOutConv2D(input, 64, kernel_size=5, strides=1, padding="same")
        maxpool_1 = MaxPool2D(pool_size=(2, 2), strides=(2, 2))(conv2d_1)
        conv_2d_2 = MaxOutConv2D(maxpool_1, 64, kernel_size=1, strides=1, padding="same")
        batch_norm_2 = BatchNormalization()(conv_2d_2)
        conv2d_3 = MaxOutConv2D(batch_norm_2, 96, kernel_size=3, strides=1, padding="same")
        maxpool_3 = MaxPool2D(pool_size=(2, 2), strides=(2, 2))(conv2d_3)
        batch_norm_3 = BatchNormalization()(maxpool_3)
        conv_2d_4 = MaxOutConv2D(batch_norm_3, 96, kernel_size=1, strides=1, padding="same")
        batch_norm_4 = BatchNormalization()(conv_2d_4)
        conv2d_5 = MaxOutConv2D(batch_norm_4, 128, kernel_size=3, strides=1, padding="same")
        maxpool_5 = MaxPool2D(pool_size=(2, 2), strides=(2, 2))(conv2d_5)
        conv_2d_6 = MaxOutConv2D(maxpool_5, 128, kernel_size=1, strides=1, padding="same")
        batch_norm_6 = BatchNormalization()(conv_2d_6)
        conv_2d_7 = MaxOutConv2D(batch_norm_6, 64, kernel_size=3, strides=1, padding="same")
        batch_norm_7 = BatchNormalization()(conv_2d_7)
        conv_2d_8 = MaxOutConv2D(batch_norm_7, 64, kernel_size=1, strides=1, padding="same")
        batch_norm_8 = BatchNormalization()(conv_2d_8)
        conv_2d_9 = MaxOutConv2D(batch_norm_8, 64, kernel_size=3, strides=1, padding="same")
        maxpool_9 = MaxPool2D(pool_size=(2, 2), strides=(2, 2))(conv_2d_9)
        flatten = Flatten()(maxpool_9)
        dense_10 = MaxOutDense(flatten, 160)
        batch_norm_10 = BatchNormalization()(dense_10)
        dropout_10 = Dropout(0.75)(batch_norm_10)
        output = Dense(n_label, activation="softmax")(dropout_10)
        return Model(inputs=input, outputs=output)

    # ---- end of the article's code ----

    keras.utils.set_random_seed(args.seed)
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    model = build_lcnn([28, 28, 1], n_label=10)
    model.compile(optimizer=Adam(learning_rate=1e-3), loss="categorical_crossentropy", jit_compile=jit)
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    non_trainable = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))

    clock = time.perf_counter if args.clock == "wall" else time.process_time
    bs = args.batch_size
    rng = np.random.default_rng(args.seed)
    x = rng.random((bs * args.train_steps, 28, 28, 1), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, len(x))]

    # Training: model.fit as in the article. The first epoch traces/compiles (warm-up); each later epoch
    # of train_steps batches is timed, and the best epoch is kept.
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=bs, epochs=1, verbose=0, shuffle=False)
    warmup_s = time.perf_counter() - t0
    train_times = []
    for _ in range(args.repeats):
        t0 = clock()
        model.fit(x, y, batch_size=bs, epochs=1, verbose=0, shuffle=False)
        train_times.append(clock() - t0)
    train_ips = [len(x) / t for t in train_times]

    # Inference: predict_on_batch (the compiled predict function) on one batch, after warm-up.
    xb = x[:bs]
    for _ in range(3):
        model.predict_on_batch(xb)
    infer_times = []
    for _ in range(args.repeats):
        t0 = clock()
        for _ in range(args.infer_steps):
            model.predict_on_batch(xb)
        infer_times.append(clock() - t0)
    infer_ips = [bs * args.infer_steps / t for t in infer_times]

    result = {
        "framework": "keras",
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": sys.version.split()[0],
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default (on)"),
        "jit_compile": bool(model.jit_compile),
        "batch_size": bs,
        "clock": args.clock,
        "trainable_params": trainable,
        "non_trainable_params": non_trainable,
        "warmup_s": round(warmup_s, 2),
        "train_img_s": round(max(train_ips), 1),
        "train_img_s_all": [round(v, 1) for v in train_ips],
        "infer_img_s": round(max(infer_ips), 1),
        "infer_img_s_all": [round(v, 1) for v in infer_ips],
        # ru_maxrss is in kilobytes on Linux.
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
