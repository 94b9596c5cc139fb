"""The pipeline's processing service, on the pytorch:cpu environment.

1. Connects to the store over the compose network (host `store`, password from the stack's secret).
2. Ingests scikit-learn's handwritten digits into the store once (the stand-in for data landing there),
   with the train/test split fixed in the table.
3. Reads both splits back with SQL, trains a small PyTorch network on the training rows, predicts the
   held-out rows, and writes a run (metrics) and its predictions back in one transaction.
Exits non-zero when anything fails or the accuracy is below MIN_ACCURACY.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import psycopg
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

EPOCHS = 60
SEED = 0


def connect(timeout: float = 60.0) -> psycopg.Connection:
    """The store answers once its health check passes; retry briefly in case it is still starting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return psycopg.connect(
                host=os.environ["DB_HOST"],
                user=os.environ["DB_USER"],
                dbname=os.environ["DB_NAME"],
                password=os.environ["DB_PASSWORD"],
                connect_timeout=5,
            )
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def ingest(conn: psycopg.Connection) -> None:
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("LOCK TABLE digits IN EXCLUSIVE MODE")
        cur.execute("SELECT count(*) FROM digits")
        if cur.fetchone()[0]:
            return
        digits = load_digits()
        ids = np.arange(len(digits.target))
        _, test_ids = train_test_split(ids, test_size=0.2, stratify=digits.target, random_state=SEED)
        test = set(test_ids.tolist())
        rows = [
            (int(i), "test" if i in test else "train", int(digits.target[i]), digits.data[i].astype(int).tolist())
            for i in ids
        ]
        cur.executemany("INSERT INTO digits (id, split, label, pixels) VALUES (%s, %s, %s, %s)", rows)
        print(f"trainer: ingested {len(rows)} digits ({len(test)} held out)", flush=True)


def read(conn: psycopg.Connection, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with conn.cursor() as cur:
        cur.execute("SELECT id, label, pixels FROM digits WHERE split = %s ORDER BY id", (split,))
        rows = cur.fetchall()
    ids = np.array([r[0] for r in rows])
    labels = np.array([r[1] for r in rows])
    pixels = np.array([r[2] for r in rows], dtype=np.float32) / 16.0
    return ids, pixels, labels


def train(x: np.ndarray, y: np.ndarray) -> tuple[nn.Module, float]:
    torch.manual_seed(SEED)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    xs, ys = torch.from_numpy(x), torch.from_numpy(y).long()
    generator = torch.Generator().manual_seed(SEED)
    loss = torch.tensor(0.0)
    for _ in range(EPOCHS):
        for batch in torch.randperm(len(xs), generator=generator).split(64):
            optimiser.zero_grad()
            loss = loss_fn(model(xs[batch]), ys[batch])
            loss.backward()
            optimiser.step()
    return model, loss.item()


def main() -> int:
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    min_accuracy = float(os.environ.get("MIN_ACCURACY", "0.9"))
    with connect() as conn:
        ingest(conn)
        _, x_train, y_train = read(conn, "train")
        test_ids, x_test, y_test = read(conn, "test")
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "INSERT INTO runs (framework, model, epochs) VALUES (%s, %s, %s) RETURNING id",
                (f"torch {torch.__version__}", "MLP 64-128-10", EPOCHS),
            )
            run_id = cur.fetchone()[0]
        model, train_loss = train(x_train, y_train)
        with torch.no_grad():
            predicted = model(torch.from_numpy(x_test)).argmax(dim=1).numpy()
        accuracy = float((predicted == y_test).mean())
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO predictions (run_id, digit_id, predicted) VALUES (%s, %s, %s)",
                [(run_id, int(i), int(p)) for i, p in zip(test_ids, predicted, strict=True)],
            )
            cur.execute(
                "UPDATE runs SET finished_at = now(), n_train = %s, n_test = %s, accuracy = %s, train_loss = %s "
                "WHERE id = %s",
                (len(y_train), len(y_test), accuracy, train_loss, run_id),
            )
    print(f"trainer: run {run_id}: {len(y_train)} training rows, accuracy {accuracy:.4f} on {len(y_test)} held out")
    if accuracy < min_accuracy:
        print(f"trainer: accuracy {accuracy:.4f} is below MIN_ACCURACY={min_accuracy}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
