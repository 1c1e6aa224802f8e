from pathlib import Path

import pytest

from evergraph.kg.errors import RegistryError
from evergraph.registry import forgetting_matrix_png, stream_mrr_png

METRICS = {
    "strategy": "lkge",
    "model": "transe",
    "protocol": "all-entities",
    "snapshots": [
        {
            "snapshot": i,
            "stream": {"mrr": 0.1 * (i + 1)},
            "per_test_set": [{"snapshot": j, "mrr": 0.1} for j in range(i + 1)],
        }
        for i in range(3)
    ],
}


@pytest.mark.parametrize("plot", [forgetting_matrix_png, stream_mrr_png])
def test_plots_write_pngs(tmp_path: Path, plot):
    path = plot(metrics=METRICS, path=tmp_path / "sub" / "p.png", upto=1)
    assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size > 1000


def test_nothing_to_plot_is_an_error(tmp_path: Path):
    with pytest.raises(RegistryError, match="no finished snapshot"):
        stream_mrr_png(metrics={"snapshots": []}, path=tmp_path / "p.png")
