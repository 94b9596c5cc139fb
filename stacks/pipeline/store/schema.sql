-- The pipeline's tables. digits: the tabular data (8x8 images as 64 grey levels 0-16, the label, and the
-- train/test split fixed at ingestion); runs and predictions: what the processing service writes back.
CREATE TABLE digits (
    id      integer  PRIMARY KEY,
    split   text     NOT NULL CHECK (split IN ('train', 'test')),
    label   smallint NOT NULL CHECK (label BETWEEN 0 AND 9),
    pixels  smallint[] NOT NULL CHECK (cardinality(pixels) = 64)
);
CREATE TABLE runs (
    id          serial PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    framework   text NOT NULL,
    model       text NOT NULL,
    epochs      integer NOT NULL,
    n_train     integer,
    n_test      integer,
    accuracy    double precision,
    train_loss  double precision
);
CREATE TABLE predictions (
    run_id    integer  NOT NULL REFERENCES runs (id),
    digit_id  integer  NOT NULL REFERENCES digits (id),
    predicted smallint NOT NULL CHECK (predicted BETWEEN 0 AND 9),
    PRIMARY KEY (run_id, digit_id)
);
