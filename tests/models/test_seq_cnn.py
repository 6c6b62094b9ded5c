"""The 1-D CNNs over tokens: output shapes, and padding never changes a prediction (eval mode)."""
import pytest
import torch

from cnnkit.models import build_model, layer_table


@pytest.mark.parametrize("name, attention", [("textcnn", None), ("rescnn1d", None), ("rescnn1d", "se")])
def test_same_prediction_alone_and_in_a_padded_batch(name, attention):
    torch.manual_seed(0)
    model = build_model(name, num_classes=3, in_channels=20, image_size=40, attention=attention,
                        channels=16, embed_dim=8).eval()
    short = torch.tensor([[5, 6, 7, 8, 9]])
    batch = torch.zeros(3, 30, dtype=torch.int64)
    batch[0, :5] = short[0]
    batch[1, :30] = torch.randint(2, 20, (30,))
    batch[2, :12] = torch.randint(2, 20, (12,))
    with torch.no_grad():
        alone, in_batch = model(short), model(batch)
        more_padding = model(torch.cat([short, torch.zeros(1, 50, dtype=torch.int64)], 1))
    assert in_batch.shape == (3, 3)
    torch.testing.assert_close(in_batch[0:1], alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(more_padding, alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(in_batch[1], alone[0])  # the test can fail: other strings do differ


def test_layer_table_takes_token_ids():
    model = build_model("textcnn", num_classes=1, in_channels=30, image_size=50, channels=4)
    table = layer_table(model, (1, 50))
    assert table["output_shape"] == [1, 1]
    convs = [r for r in table["rows"] if r["type"] == "Conv1d"]
    assert [r["output_shape"] for r in convs] == [[1, 4, 50]] * 3
    # 2 FLOPs per multiply-add: Cin * Cout * k * L for widths 3, 5, 7 (embed_dim 64)
    assert sum(r["flops"] for r in convs) == sum(2 * 64 * 4 * k * 50 for k in (3, 5, 7))
