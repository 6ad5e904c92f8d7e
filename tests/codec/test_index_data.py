"""codec.conceal.data: augmented index maps of photos (shifts, mirroring), one encoding for several sizes."""
import numpy as np
import pytest
from PIL import Image

from codec.conceal.data import build_index_dataset, load_index_dataset, parse_variants, variant_image
from codec.image import load_image
from codec.zoo import load_codec


def test_parse_variants():
    assert parse_variants("0,0;0,0,f;8,4") == ((0, 0, False), (0, 0, True), (8, 4, False))
    for bad in ("0", "a,b", "1,2,3", "-1,0"):
        with pytest.raises(ValueError, match="variant"):
            parse_variants(bad)


def test_variant_image_mirrors_then_crops():
    im = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    v = variant_image(im, 2, 3, True)
    assert v.shape == (3, 4, 3)
    assert np.array_equal(v, im[:, ::-1][2:, 3:])


def test_build_matches_the_codec_and_resumes(tmp_path, kodak_dir):
    photos = [kodak_dir / "kodim01.png", kodak_dir / "kodim23.png"]
    small = []
    for n, p in enumerate(photos):                      # 160×240 crops keep the test fast
        f = tmp_path / f"p{n}.png"
        Image.fromarray(load_image(p)[:160, :240]).save(f)
        small.append(f)
    codecs = [load_codec("default", 1024, device="cpu"), load_codec("default", 128, device="cpu")]
    out = tmp_path / "ds"
    variants = ((0, 0, False), (0, 0, True), (8, 8, False))
    r = build_index_dataset(codecs, small, out, variants=variants, log=None)
    assert r["maps"] == 6 and r["tokens"] == 6 * 10 * 15      # (8, 8) shifts are padded back to 10×15
    for c in codecs:
        ds = load_index_dataset(out / f"K{c.codebook_size}")
        assert list(ds.photo) == [0, 1] * 3 and list(ds.variant) == [0, 0, 1, 1, 2, 2]
        for m, ph, v in zip(ds.maps, ds.photo, ds.variant, strict=False):
            want = c.encode_indices(variant_image(load_image(small[ph]), *variants[v])).indices
            assert np.array_equal(m, want)              # each size quantizes the same encoder output
        assert ds.maps[0].max() < c.codebook_size
    plain, mirrored = load_index_dataset(out / "K1024", [0]).maps[0], load_index_dataset(out / "K1024", [1]).maps[0]
    assert (plain[:, ::-1] != mirrored).mean() > 0.1    # mirroring the photo gives a new map, not a flipped copy
    again = build_index_dataset(codecs, small, out, variants=variants, log=None)
    assert again["maps"] == 0                           # every part file exists: nothing recomputed
    (out / "K128" / "v02-p0of1.npz").write_bytes(b"broken")
    with pytest.raises(ValueError, match="v02-p0of1.npz: not a readable"):
        load_index_dataset(out / "K128")
    with pytest.raises(FileNotFoundError, match="no index-map files"):
        load_index_dataset(tmp_path)
