import numpy as np
import pytest
from selection_data import table_of


@pytest.fixture
def digits_table():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.data.astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return table_of(x.astype(np.float32), **{"metadata.label": [str(v) for v in d.target]})
