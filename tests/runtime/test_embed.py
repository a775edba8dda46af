"""Embeddings over real HTTP: one L2-normalised float32 vector per input, a batch equal to its singles."""

import numpy as np

from runtime.engine.fingerprint import HEADER

TEXTS = ["the cat sat on the mat", "Deterministic inference at the edge", "Édith Piaf — «La vie en rose»"]


def embed(client, texts):
    response = client.post("/v1/embed", json={"input": texts})
    assert response.status_code == 200, response.text
    return response


def test_shape_dim_and_normalisation(client):
    response = embed(client, TEXTS)
    body = response.json()
    assert body["dim"] == 640
    assert response.headers[HEADER] == body["fingerprint"]
    vectors = np.array(body["embeddings"], dtype=np.float64)
    assert vectors.shape == (3, 640)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Every value is exactly a float32: the JSON carries the float32s, not a wider computation.
    assert np.array_equal(vectors.astype(np.float32).astype(np.float64), vectors)


def test_single_string_is_one_vector(client):
    single = embed(client, TEXTS[0]).json()["embeddings"]
    assert len(single) == 1 and len(single[0]) == 640


def test_batch_equals_singles_exactly(client):
    batch = embed(client, TEXTS).json()["embeddings"]
    singles = [embed(client, text).json()["embeddings"][0] for text in TEXTS]
    assert batch == singles


def test_same_input_same_bytes(client):
    first = embed(client, TEXTS).content
    assert all(embed(client, TEXTS).content == first for _ in range(4))


def test_different_texts_differ_and_similar_texts_are_closer(client):
    a, b, c = (
        np.array(v)
        for v in embed(client, ["a happy dog", "a joyful puppy", "quarterly tax filing"]).json()["embeddings"]
    )
    assert float(a @ b) > float(a @ c)
