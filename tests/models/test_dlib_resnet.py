import numpy as np
import pytest
import torch
import torch.nn.functional as F

from faceattrs.models.dlib_resnet import CHIP_SIZE, DlibResNet, FaceDescriptor, read_layers

MEANS = (122.8, 117.0, 104.3)


def _values(array: np.ndarray) -> str:
    return " ".join(f"{v:.9g}" for v in array.ravel())


def write_tiny_net(path, seed: int = 0, outputs: int = 8) -> dict[str, np.ndarray]:
    """A dlib-format XML (output layer first, as dump_dlib_net writes it) of a 4-layer residual net.

    input -> relu -> tag1 -> con 3->4 -> add_prev tag1 (3 channels zero-padded to 4) -> affine ->
    global avg_pool -> fc_no_bias. Returns its weights.
    """
    rng = np.random.default_rng(seed)
    w = {
        "con_w": rng.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32),
        "con_b": rng.normal(0, 0.1, 4).astype(np.float32),
        "scale": rng.normal(1, 0.1, 4).astype(np.float32),
        "shift": rng.normal(0, 0.1, 4).astype(np.float32),
        "fc": rng.normal(0, 1, (4, outputs)).astype(np.float32),
    }
    con = "num_filters='4' nr='3' nc='3' stride_y='1' stride_x='1' padding_y='1' padding_x='1'"
    r, g, b = MEANS
    path.write_text(
        "<net>\n"
        "<layer idx='0' type='loss'><loss_metric margin='0.04' distance_threshold='0.6'/></layer>\n"
        f"<layer idx='1' type='comp'><fc_no_bias num_outputs='{outputs}'>{_values(w['fc'])}</fc_no_bias></layer>\n"
        "<layer idx='2' type='comp'><avg_pool nr='0' nc='0' stride_y='1' stride_x='1'/></layer>\n"
        f"<layer idx='3' type='comp'><affine_con>{_values(w['scale'])} {_values(w['shift'])}</affine_con></layer>\n"
        "<layer idx='4' type='comp'><add_prev tag='1'/></layer>\n"
        f"<layer idx='5' type='comp'><con {con}>{_values(w['con_w'])} {_values(w['con_b'])}</con></layer>\n"
        "<layer idx='6' type='tag' id='1'/>\n"
        "<layer idx='7' type='comp'><relu/></layer>\n"
        f"<layer idx='8' type='input'><input_rgb_image_sized r='{r}' g='{g}' b='{b}' nr='150' nc='150'/></layer>\n"
        "</net>\n"
    )
    return w


def reference(w: dict[str, np.ndarray], x: torch.Tensor) -> torch.Tensor:
    """The tiny net written out by hand."""
    x = F.relu((x - torch.tensor(MEANS).view(1, 3, 1, 1)) / 256)
    y = F.conv2d(x, torch.from_numpy(w["con_w"]), torch.from_numpy(w["con_b"]), padding=1)
    y = y + torch.cat([x, torch.zeros_like(x[:, :1])], 1)  # dlib zero-pads the narrower tensor
    y = y * torch.from_numpy(w["scale"]).view(1, -1, 1, 1) + torch.from_numpy(w["shift"]).view(1, -1, 1, 1)
    return y.mean((2, 3)) @ torch.from_numpy(w["fc"])


def test_read_layers_puts_the_input_first(tmp_path):
    write_tiny_net(tmp_path / "net.xml")
    kinds = [kind for kind, _, _ in read_layers(tmp_path / "net.xml")]
    expected = "input_rgb_image_sized relu tag1 con add_prev affine_con avg_pool fc_no_bias loss_metric"
    assert kinds == expected.split()


def test_rebuilt_network_matches_the_layers_written_by_hand(tmp_path):
    w = write_tiny_net(tmp_path / "net.xml")
    x = torch.rand(2, 3, 20, 20) * 255
    with torch.no_grad():
        got = DlibResNet(read_layers(tmp_path / "net.xml"))(x)
    torch.testing.assert_close(got, reference(w, x), rtol=1e-4, atol=1e-5)


def test_face_descriptor_scales_uint8_faces_to_the_chip_size(tmp_path):
    w = write_tiny_net(tmp_path / "net.xml")
    faces = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        got = FaceDescriptor(DlibResNet(read_layers(tmp_path / "net.xml")))(faces)
    scaled = F.interpolate(faces.permute(0, 3, 1, 2).float(), size=(CHIP_SIZE, CHIP_SIZE), mode="bilinear")
    torch.testing.assert_close(got, reference(w, scaled), rtol=1e-4, atol=1e-5)


def test_unknown_layers_fail_loudly(tmp_path):
    (tmp_path / "net.xml").write_text("<net><layer idx='0' type='comp'><mystery/></layer></net>")
    net = DlibResNet(read_layers(tmp_path / "net.xml"))
    with pytest.raises(ValueError, match="mystery"):
        net(torch.zeros(1, 3, 4, 4))
