"""Every route and every bad input of the HTTP API, through FastAPI's TestClient."""

import asyncio
import tempfile

import pytest
from fastapi.testclient import TestClient

from faceattrs.api.server import ApiSettings, InferencePool, create_app
from tests.conftest import IMAGES


@pytest.fixture(scope="module")
def client(analyzer):
    settings = ApiSettings(max_request_bytes=2 * 1024 * 1024, max_batch_images=3)
    with TestClient(create_app(settings, analyzer), raise_server_exceptions=False) as c:
        yield c


def image(name: str) -> bytes:
    return (IMAGES / name).read_bytes()


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    assert "Traceback" not in response.text
    return body


def test_analyze_multipart(client):
    r = client.post("/v1/analyze", files={"file": ("x.jpg", image("group_5.jpg"), "image/jpeg")})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and len(body["faces"]) == 5
    face = body["faces"][0]
    assert {"x", "y", "w", "h", "det_score", "age", "age_low", "age_high", "gender", "gender_prob", "ethnicity",
            "ethnicity_prob", "p_white", "p_black", "p_asian", "p_indian", "p_others"} <= set(face)  # fmt: skip
    assert body["model"]["sha256"] and body["timing_ms"] > 0


def test_faces_are_numbered_from_1_and_rounded_as_the_cli_writes_them(client):
    faces = client.post("/v1/analyze", files={"file": ("x.jpg", image("group_5.jpg"), "image/jpeg")}).json()["faces"]
    assert [f["face"] for f in faces] == [1, 2, 3, 4, 5]  # as drawn on the annotated picture
    for f in faces:
        assert all(round(f[k], 1) == f[k] for k in ("x", "y", "w", "h", "age", "age_low", "age_high")), f
        assert all(round(f[k], 4) == f[k] for k in ("det_score", "gender_prob", "p_white", "p_others")), f


def test_analyze_raw_body_and_aligned(client):
    r = client.post("/v1/analyze", content=image("astronaut.jpg"), headers={"content-type": "image/jpeg"})
    assert r.status_code == 200 and len(r.json()["faces"]) == 1
    r = client.post("/v1/analyze?aligned=true", content=image("no_face.png"),
                    headers={"content-type": "application/octet-stream"})  # fmt: skip
    assert r.status_code == 200 and r.json()["faces"][0]["w"] == 400


def test_no_face_is_a_200_with_status(client):
    r = client.post("/v1/analyze", files={"file": ("n.png", image("no_face.png"), "image/png")})
    assert r.status_code == 200 and r.json()["status"] == "no_face" and r.json()["faces"] == []


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("empty.jpg", 400, "empty"),
        ("text.jpg", 400, "not_an_image"),
        ("truncated.jpg", 400, "corrupt"),
        ("bomb_30000.png", 413, "too_large"),
        ("scan bomb", 400, "too_complex"),
        ("icon", 400, "unsupported_format"),
    ],
)
def test_bad_images(client, name, status, code):
    # the name and content type claim a JPEG; content is sniffed
    r = client.post("/v1/analyze", files={"file": ("photo.jpg", hostile(name), "image/jpeg")})
    assert_error(r, status, code)


def hostile(name: str) -> bytes:
    """A test image by name, or a file made to be refused: a JPEG of 20,000 scans, an ICO."""
    import io

    from PIL import Image

    if name == "scan bomb":
        from tests.inference.test_decode import scan_bomb

        return scan_bomb()
    if name == "icon":
        buffer = io.BytesIO()
        Image.new("RGB", (16, 16)).save(buffer, "ICO")
        return buffer.getvalue()
    return image(name)


def test_a_tiny_aligned_crop_is_a_400_that_says_why(client):
    tiny = hostile("icon")  # 16x16, but as a PNG so that it decodes
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.open(io.BytesIO(tiny)).convert("RGB").save(buffer, "PNG")
    r = client.post("/v1/analyze?aligned=true", content=buffer.getvalue(), headers={"content-type": "image/png"})
    body = assert_error(r, 400, "too_small")
    assert "16x16 pixels" in body["error"]["message"]


def test_a_huge_aligned_crop_is_refused_at_once(client):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (2100, 2100), (200, 160, 140)).save(buffer, "PNG")  # over 4 MP: no aligned crop is that large
    r = client.post("/v1/analyze?aligned=true", content=buffer.getvalue(), headers={"content-type": "image/png"})
    assert "aligned face crop" in assert_error(r, 413, "too_large")["error"]["message"]


def test_docs_work_offline(client):
    import re

    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href|url)\s*[=:(]\s*['"]([^'"]+)['"]""", page.text)
    assert urls and not [u for u in urls if "://" in u or u.startswith("//")], urls  # nothing from the internet
    assert '"validatorUrl": null' in page.text  # no badge from validator.swagger.io either
    for url in urls:
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.content) > 200, url


def test_empty_raw_body(client):
    assert_error(client.post("/v1/analyze", content=b"", headers={"content-type": "image/jpeg"}), 400, "empty")


def test_wrong_content_type(client):
    assert_error(client.post("/v1/analyze", json={"image": "x"}), 415, "unsupported_media_type")
    r = client.post("/v1/analyze/batch", content=image("astronaut.jpg"), headers={"content-type": "image/jpeg"})
    assert_error(r, 415, "unsupported_media_type")


def test_request_too_large(client):
    big = b"\xff" * (3 * 1024 * 1024)
    assert_error(client.post("/v1/analyze", content=big, headers={"content-type": "image/jpeg"}), 413,
                 "request_too_large")  # fmt: skip


def test_missing_file_field_and_bad_multipart(client):
    assert_error(client.post("/v1/analyze", files={"other": ("a.jpg", b"x", "image/jpeg")}), 400, "missing_file")
    r = client.post("/v1/analyze", content=b"--zz\r\ngarbage", headers={"content-type": "multipart/form-data"})
    assert r.status_code == 400 and r.json()["error"]["code"] in ("bad_multipart", "missing_file")


def test_batch_results_in_order_with_own_status(client):
    files = [("files", (n, image(n), "image/jpeg")) for n in ("astronaut.jpg", "text.jpg", "no_face.png")]
    r = client.post("/v1/analyze/batch", files=files)
    assert r.status_code == 200
    results = r.json()["results"]
    assert [(x["index"], x["filename"], x["status"]) for x in results] == [
        (0, "astronaut.jpg", "ok"), (1, "text.jpg", "error"), (2, "no_face.png", "no_face")]  # fmt: skip
    assert results[1]["error"]["code"] == "not_an_image"


def test_too_many_batch_items(client):
    files = [("files", (f"{i}.jpg", image("astronaut.jpg"), "image/jpeg")) for i in range(4)]
    assert_error(client.post("/v1/analyze/batch", files=files), 413, "too_many_images")


def test_invalid_query_parameter(client):
    r = client.post("/v1/analyze?aligned=maybe", content=image("astronaut.jpg"), headers={"content-type": "image/jpeg"})
    assert_error(r, 422, "invalid_parameters")


def test_model_health_docs_and_unknown_routes(client):
    m = client.get("/v1/model").json()
    assert m["classes"]["ethnicity"] == ["white", "black", "asian", "indian", "others"] and "metrics" in m
    assert client.get("/healthz").json() == {"status": "ok"}
    assert "/v1/analyze" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200
    assert_error(client.get("/nope"), 404, "not_found")
    assert_error(client.get("/v1/analyze"), 405, "method_not_allowed")


def test_html_page_upload_shows_annotated_image(client):
    home = client.get("/")
    assert home.status_code == 200 and 'enctype="multipart/form-data"' in home.text
    r = client.post("/", files={"file": ("g.jpg", image("group_5.jpg"), "image/jpeg")})
    assert r.status_code == 200 and "data:image/jpeg;base64," in r.text and r.text.count("<tr><td>") == 5
    assert r.text.count('<svg class="ages"') == 5 and '<rect class="in"' in r.text  # each face's age distribution
    bad = client.post("/", files={"file": ("t.jpg", image("text.jpg"), "image/jpeg")})
    assert bad.status_code == 400 and "not an image format" in bad.text and "Traceback" not in bad.text


def test_uploads_never_touch_the_disk(client, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an upload was spooled to a temporary file")

    monkeypatch.setattr(tempfile.SpooledTemporaryFile, "rollover", refuse)
    big = image("astronaut_1mp.jpg") + b"\0" * (1024 * 1024)  # over Starlette's 1 MB default spool size
    r = client.post("/v1/analyze", files={"file": ("big.jpg", big, "image/jpeg")})
    assert r.status_code == 200


def test_pool_refuses_with_503_when_full():
    pool = InferencePool(workers=1, queue_size=0)

    async def scenario():
        import time

        first = asyncio.create_task(pool.run(time.sleep, 0.3, timeout=5))
        await asyncio.sleep(0.05)
        with pytest.raises(Exception) as exc:
            await pool.run(time.sleep, 0, timeout=5)
        await first
        return exc.value

    err = asyncio.run(scenario())
    assert err.status == 503 and err.headers == {"Retry-After": "1"}


def test_pool_timeout_is_504():
    import time

    pool = InferencePool(workers=1, queue_size=1)
    with pytest.raises(Exception) as exc:
        asyncio.run(pool.run(time.sleep, 0.5, timeout=0.05))
    assert exc.value.status == 504


def test_the_upload_page_serves_a_model_folder_without_test_figures(candidate_dir):
    from faceattrs import Analyzer

    with TestClient(create_app(ApiSettings(), Analyzer(candidate_dir)), raise_server_exceptions=False) as c:
        page = c.get("/")
        assert page.status_code == 200 and "no test figures for this model folder" in page.text
        assert "metrics" not in c.get("/v1/model").json()


def test_html_page_notes_that_childrens_gender_is_hard_to_read():
    from faceattrs.api import page
    from faceattrs.inference.analyzer import Face, ImageResult

    def face(index, age, flags):
        return Face(index, (0, 0, 9, 9), 0.9, [], age, age - 3, age + 3, "male", 0.6, "asian", 0.8, {}, flags)

    faces = [face(0, 6.0, ["small"]), face(1, 30.0, [])]
    html = page.render(ApiSettings(), {"name": "m", "version": "1"}, ImageResult("x", "ok", faces), "data:,")
    rows = html.split("<tr><td>")[1:]
    assert "small, children&#39;s gender is hard to read" in rows[0] and "children" not in rows[1]
