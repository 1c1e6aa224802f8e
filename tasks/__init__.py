"""Thin Prefect tasks over ``kg`` and ``registry``: ingest, plan, train, build-index, evaluate, register,
publish-artifacts, promote, rollback. They pass paths, ids and small dicts, never tensors."""
