"""Data preparation of the real-corpus recipes (egs2/{myst,cmu_kids,accented_english}/asr1/local/data.sh),
run on tiny fake corpora laid out exactly as the releases are.

Where sox is installed the wav.scp pipes are also run; without it everything else is still checked
(the pipes are then just strings).
"""

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "egs2" / "asr_utils"))
from kaldi_data import Utt, normalize_text, write_data_dir  # noqa: E402

HAVE_SOX = shutil.which("sox") is not None
KALDI_FILES = ("wav.scp", "text", "utt2spk", "spk2utt")


def data_sh(recipe: str, *args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a recipe's local/data.sh, the interpreter given as $python, and no corpus paths inherited."""
    environ = {k: v for k, v in os.environ.items() if k not in ("MYST", "CMU_KIDS", "COMMONVOICE", "L2ARCTIC",
                                                                 "LIBRISPEECH")}
    environ.update({"python": sys.executable, **(env or {})})
    script = REPO / "egs2" / recipe / "asr1" / "local" / "data.sh"
    return subprocess.run(["bash", str(script), *args], cwd=cwd, env=environ, capture_output=True, text=True,
                          timeout=60)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, proc.stderr
    return proc


def read_dir(path: Path) -> dict[str, dict[str, str]]:
    """{file: {key: rest of line}}, after checking every file is C-sorted and keys agree."""
    assert sorted(p.name for p in path.iterdir()) == sorted(KALDI_FILES)
    tables = {}
    for name in KALDI_FILES:
        lines = (path / name).read_text(encoding="utf-8").splitlines()
        assert lines == sorted(lines, key=lambda s: s.encode()), f"{path / name} is not sorted"
        tables[name] = dict(line.split(" ", 1) for line in lines)
    assert tables["wav.scp"].keys() == tables["text"].keys() == tables["utt2spk"].keys()
    spk2utt = {spk: utts.split() for spk, utts in tables["spk2utt"].items()}
    assert spk2utt == {spk: sorted(u for u, s in tables["utt2spk"].items() if s == spk)
                       for spk in set(tables["utt2spk"].values())}
    for utt, spk in tables["utt2spk"].items():
        assert utt.startswith(spk)
    return tables


def decode_pipe(entry: str) -> np.ndarray:
    assert entry.endswith(" |")
    out = subprocess.run(entry[:-1], shell=True, capture_output=True, check=True).stdout
    audio, sr = soundfile.read(io.BytesIO(out), dtype="int16")
    assert sr == 16000
    return audio


def tone(seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (3000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)


# ---------------------------------------------------------------------------------------------- helpers


def test_normalize_text():
    assert normalize_text("\u201cDon\u2019t go,\u201d she said\u2014QUIETLY.") == "don't go she said quietly"
    assert normalize_text("'Hello' world-wide, it's 42 rock'n'roll_x") == "hello world wide it's 42 rock'n'roll x"
    # hypotheses: Whisper's special tokens go, whatever text surrounds them
    assert normalize_text("<|en|><|transcribe|><|notimestamps|> Hello,<|0.00|>world!") == "hello world"
    assert normalize_text("Cafe\u0301 na\u00efve") == "caf\u00e9 na\u00efve"  # combining accent stays on its letter
    assert normalize_text(" ?! ") == ""


def test_write_data_dir_refuses_what_kaldi_refuses(tmp_path):
    with pytest.raises(SystemExit, match="no utterances"):
        write_data_dir(tmp_path / "a", [])
    with pytest.raises(SystemExit, match="duplicate"):
        write_data_dir(tmp_path / "a", [Utt("s1-1", "s1", "x.wav", "a"), Utt("s1-1", "s1", "y.wav", "b")])
    with pytest.raises(SystemExit, match="must start with their speaker id"):
        write_data_dir(tmp_path / "a", [Utt("a-1", "zz", "x.wav", "a"), Utt("b-1", "bb", "y.wav", "b")])
    with pytest.raises(SystemExit, match="whitespace"):
        write_data_dir(tmp_path / "a", [Utt("s 1", "s", "x.wav", "a")])
    stale = tmp_path / "b" / "segments"
    stale.parent.mkdir()
    stale.write_text("old\n")
    write_data_dir(tmp_path / "b", [Utt("s2-1", "s2", "y.wav", "b c"), Utt("s1-1", "s1", "x.wav", "a")])
    assert not stale.exists()
    assert read_dir(tmp_path / "b")["text"] == {"s1-1": "a", "s2-1": "b c"}


# ---------------------------------------------------------------------------------------------- MyST

S1 = "myst_002030_2014-02-28_09-37-59_LS_1.1"


def myst_utt(root: Path, split: str, student: str, session: str, n: int, trn: str | None,
             seconds: float = 0.5, sr: int = 16000, name: str | None = None) -> None:
    d = root / "data" / split / student / session
    d.mkdir(parents=True, exist_ok=True)
    base = name or f"{session}_{n:03d}"
    soundfile.write(d / f"{base}.flac", tone(seconds, sr), sr)
    if trn is not None:
        (d / f"{base}.trn").write_text(trn + "\n")


@pytest.fixture
def myst(tmp_path):
    root = tmp_path / "myst"
    u = lambda *a, **k: myst_utt(root, "train", "002030", S1, *a, **k)  # noqa: E731
    u(1, "<no_signal>")
    u(2, "UM so the (magnet) <noise> sticks to the sti- *tr tr* iron (()) uh")
    u(3, None)  # no transcript
    u(4, "this answer is far too long", seconds=31)
    u(5, "<b_aside> I think it's the [wind] <e_aside>")
    u(6, "Well, it's ELECTRICITY!", sr=8000)
    u(7, "um uh <laugh> hmm")
    u(8, "hello there")
    (root / "data/train/002030" / S1 / f"{S1}_008.flac").write_bytes(b"not a flac file")
    myst_utt(root, "train", "002031", "myst_002031_2014-03-01_10-00-00_LS_2.1", 1, "the -ing circuit is closed")
    myst_utt(root, "train", "002031", "oddly_named", 0, "(( it )) works", name="take2")
    myst_utt(root, "development", "002100", "myst_002100_2014-03-02_10-00-00_VB_1.1", 1, "Magnets attract.")
    myst_utt(root, "test", "002200", "myst_002200_2014-03-03_10-00-00_EE_3.2", 1, "<sil> the bulb lights up")
    return root


def test_myst(myst, tmp_path):
    # As the shared stage script (egs2/TEMPLATE/adapt1/adapt.sh) calls it.
    proc = ok(data_sh("myst", "--nj", "2", "--python", sys.executable, "--out", "out", cwd=tmp_path,
                      env={"MYST": str(myst), "python": "no-such-python"}))
    train = read_dir(tmp_path / "out" / "train")
    assert train["text"] == {
        f"{S1}_002": "so the magnet sticks to the iron",
        f"{S1}_005": "i think it's the",
        f"{S1}_006": "well it's electricity",
        "myst_002031_2014-03-01_10-00-00_LS_2.1_001": "the circuit is closed",
        "myst_002031_take2": "it works",  # basename without the speaker prefix gets it
    }
    assert set(train["spk2utt"]) == {"myst_002030", "myst_002031"}
    wav = myst / "data/train/002030" / S1
    assert train["wav.scp"][f"{S1}_002"] == str(wav / f"{S1}_002.flac")  # 16 kHz flac is read as is
    assert train["wav.scp"][f"{S1}_006"] == f"sox {wav / f'{S1}_006.flac'} -r 16000 -c 1 -b 16 -t wav - |"
    assert "1 longer than 30 s" in proc.stderr and "1 with unreadable audio" in proc.stderr
    assert "2 empty after cleaning" in proc.stderr and "1 without a readable transcript" in proc.stderr
    assert read_dir(tmp_path / "out" / "dev")["text"] == {
        "myst_002100_2014-03-02_10-00-00_VB_1.1_001": "magnets attract"}
    assert read_dir(tmp_path / "out" / "test")["utt2spk"] == {
        "myst_002200_2014-03-03_10-00-00_EE_3.2_001": "myst_002200"}
    if HAVE_SOX:
        assert len(decode_pipe(train["wav.scp"][f"{S1}_006"])) == 8000

    # Options after the known ones reach prepare_myst.py; the release's top dir is accepted too.
    top = tmp_path / "release"
    top.mkdir()
    (top / "myst_child_conv_speech").symlink_to(myst)
    ok(data_sh("myst", "--db_root", str(top), "--max_duration", "40", cwd=tmp_path))
    assert f"{S1}_004" in read_dir(tmp_path / "data" / "train")["text"]


def librispeech(root: Path) -> Path:
    """LibriSpeech test-clean as untarred: LibriSpeech/test-clean/<spk>/<chapter>/{*.flac, <spk>-<chapter>.trans.txt}."""
    for spk, chapter, lines in (("1089", "134686", ["HE HOPED THERE WOULD BE STEW", "STUFF IT INTO YOU"]),
                                ("121", "121726", ["ALSO A POPULAR CONTRIVANCE", ""])):
        d = root / "LibriSpeech" / "test-clean" / spk / chapter
        d.mkdir(parents=True)
        for i in range(len(lines)):
            soundfile.write(d / f"{spk}-{chapter}-{i:04d}.flac", tone(0.5, 16000), 16000)
        (d / f"{spk}-{chapter}.trans.txt").write_text(
            "".join(f"{spk}-{chapter}-{i:04d} {t}\n" for i, t in enumerate(lines)) + f"{spk}-{chapter}-0099 NO AUDIO\n")
    return root


def test_librispeech_forgetting_set(myst, tmp_path):
    libri = librispeech(tmp_path / "libri")
    ok(data_sh("myst", "--out", "out", cwd=tmp_path, env={"MYST": str(myst), "LIBRISPEECH": str(libri)}))
    tables = read_dir(tmp_path / "out" / "librispeech_test_clean")
    assert tables["text"] == {"librispeech_1089-134686-0000": "he hoped there would be stew",
                              "librispeech_1089-134686-0001": "stuff it into you",
                              "librispeech_121-121726-0000": "also a popular contrivance"}
    assert tables["utt2spk"]["librispeech_121-121726-0000"] == "librispeech_121"
    assert tables["wav.scp"]["librispeech_121-121726-0000"].endswith("121/121726/121-121726-0000.flac")
    proc = data_sh("myst", "--out", "out2", "--librispeech", str(tmp_path / "nowhere"), cwd=tmp_path,
                   env={"MYST": str(myst)})
    assert proc.returncode != 0 and "test-clean" in proc.stderr


def test_myst_errors_name_the_expected_path(myst, tmp_path):
    proc = data_sh("myst", cwd=tmp_path)
    assert proc.returncode != 0 and "MYST" in proc.stderr
    proc = data_sh("myst", "--db_root", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert proc.returncode != 0 and str(tmp_path / "nowhere" / "data") in proc.stderr
    shutil.rmtree(myst / "data" / "development")
    proc = data_sh("myst", "--db_root", str(myst), cwd=tmp_path)
    assert proc.returncode != 0 and str(myst / "data" / "development") in proc.stderr


# ---------------------------------------------------------------------------------------------- CMU Kids

CMU_SPEAKERS = ["fabm", "facs", "fcaw", "fejm", "fgmb", "mabc", "mbrt", "mcdd", "mdez", "mjmc"]  # sorted


def write_sphere(path: Path, samples: np.ndarray, sr: int = 16000) -> None:
    header = "\n".join([
        "NIST_1A", "   1024", f"sample_rate -i {sr}", "channel_count -i 1", "sample_n_bytes -i 2",
        f"sample_count -i {len(samples)}", "sample_coding -s3 pcm", "sample_byte_format -s2 01", "end_head",
    ]) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header.encode().ljust(1024, b" ") + samples.astype("<i2").tobytes())


@pytest.fixture
def cmu_kids(tmp_path):
    root = tmp_path / "cmu_kids"
    (root / "tables").mkdir(parents=True)
    (root / "tables" / "sentence.tbl").write_text(
        "1aa\t10\tA bird sat on a branch.\n1ab\t1\tThe big brown dog ran.\n1ac\t1\tIt is hot.\n1ad\t1\tYes.\n")
    for spk in CMU_SPEAKERS:
        utts = {"1aa1": "A BIRD SAT ON A BRANCH"}
        if spk == "fabm":
            utts.update({"1ab2": "[noise] THE BIG /B R AW N/ DOG <sil> RAN [breath]", "1ac1": None,
                         "1ad2": "[noise] <sil>"})
        for suffix, trn in utts.items():
            write_sphere(root / "kids" / spk / "signal" / f"{spk}{suffix}.sph", tone(0.1, 16000))
            if trn is not None:
                (root / "kids" / spk / "trans").mkdir(exist_ok=True)
                (root / "kids" / spk / "trans" / f"{spk}{suffix}.trn").write_text(trn + "\n")
    return root


def test_cmu_kids(cmu_kids, tmp_path):
    sph = cmu_kids / "kids/fabm/signal/fabm1ab2.sph"
    assert soundfile.info(sph).frames == 1600  # the fake SPHERE file is well-formed

    proc = ok(data_sh("cmu_kids", "--db_root", str(cmu_kids), "--nj", "2", cwd=tmp_path))
    sets = {name: read_dir(tmp_path / "data" / name) for name in ("train", "dev", "test")}
    assert sorted(sets["train"]["spk2utt"]) == CMU_SPEAKERS[:8]
    assert list(sets["dev"]["spk2utt"]) == ["mdez"] and list(sets["test"]["spk2utt"]) == ["mjmc"]
    assert sets["train"]["text"]["fabm1ab2"] == "the big dog ran"  # markers and phone strings dropped
    assert sets["train"]["text"]["fabm1aa1"] == "a bird sat on a branch"
    assert "fabm1ac1" not in sets["train"]["text"] and "fabm1ad2" not in sets["train"]["text"]
    assert "1 without a transcript" in proc.stderr and "1 empty after cleaning" in proc.stderr
    assert sets["test"]["wav.scp"]["mjmc1aa1"] == (
        f"sox -t sph {cmu_kids / 'kids/mjmc/signal/mjmc1aa1.sph'} -r 16000 -c 1 -b 16 -t wav - |")
    if HAVE_SOX:
        assert len(decode_pipe(sets["train"]["wav.scp"]["fabm1ab2"])) == 1600

    ok(data_sh("cmu_kids", "--db_root", str(cmu_kids), "--text_source", "prompt", "--out", "p", cwd=tmp_path))
    text = read_dir(tmp_path / "p" / "train")["text"]
    assert text["fabm1ab2"] == "the big brown dog ran" and text["fabm1ac1"] == "it is hot"


def test_cmu_kids_layout_errors(cmu_kids, tmp_path):
    proc = data_sh("cmu_kids", "--db_root", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert proc.returncode != 0 and str(tmp_path / "nowhere" / "kids") in proc.stderr
    # The release's own top directory is accepted, and the error names both places.
    assert str(tmp_path / "nowhere" / "cmu_kids" / "kids") in proc.stderr
    ok(data_sh("cmu_kids", "--db_root", str(tmp_path), cwd=tmp_path))
    shutil.rmtree(cmu_kids / "kids" / "mjmc")
    proc = data_sh("cmu_kids", "--db_root", str(cmu_kids), cwd=tmp_path)
    assert proc.returncode != 0 and "at least 10" in proc.stderr


# ---------------------------------------------------------------------------------------------- Common Voice

CV_HEADER = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tvariant\tlocale\tsegment"
CV_OLD_HEADER = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccent\tlocale\tsegment"
INDIA = "India and South Asia (India, Pakistan, Sri Lanka)"


def write_cv(root: Path, header: str, tables: dict[str, list[tuple[str, str, str, str]]],
             missing_clips=()) -> None:
    en = root / "en"
    (en / "clips").mkdir(parents=True)
    old = "accent\t" in header
    for name, rows in tables.items():
        lines = [header]
        for spk, clip, sentence, accent in rows:
            fields = [spk, clip, sentence, "2", "0", "twenties", "male", accent] + ([] if old else [""]) + ["en", ""]
            lines.append("\t".join(fields))
            if clip not in missing_clips:
                (en / "clips" / clip).write_bytes(b"")  # content is not read: only wav.scp strings are checked
        (en / f"{name}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def commonvoice(tmp_path):
    root = tmp_path / "cv"
    train_rows = [
        ("aaa1", "common_voice_en_1.mp3", "\u201cDon\u2019t go,\u201d she said.", "Scottish English"),
        ("bbb2", "common_voice_en_2.mp3", "It rains in Mumbai.", INDIA),
        ("fff6", "common_voice_en_6.mp3", "Two places at once.", "England English,Scottish English"),
        ("ggg7", "common_voice_en_7.mp3", "Not quite native.", "Scottish English,Non native speaker"),
        ("hhh8", "common_voice_en_8.mp3", "G'day mate!", "Australian English"),
        ("hhh8", "common_voice_en_9.mp3", "This clip is lost.", "Australian English"),
        ("iii9", "common_voice_en_10.mp3", "Howdy.", "United States English"),
    ]
    dev_rows = [("eee5", "common_voice_en_20.mp3", "A dev sentence.", INDIA),
                ("jjj0", "common_voice_en_21.mp3", "Another one.", "Canadian English")]
    test_rows = [
        ("ccc3", "common_voice_en_30.mp3", "Och aye.", "Scottish English"),
        ("ddd4", "common_voice_en_31.mp3", "Hello, world.", "United States English"),
        ("kkk1", "common_voice_en_32.mp3", "Cheerio.", "England English"),
        ("lll2", "common_voice_en_33.mp3", "Namaste.", INDIA),
        ("mmm3", "common_voice_en_34.mp3", "Crikey.", "Australian English"),
    ]
    # validated.tsv holds every validated clip, including dev and test speakers' other clips.
    validated = train_rows + [("ccc3", "common_voice_en_40.mp3", "Test speaker elsewhere.", "Scottish English")]
    write_cv(root, CV_HEADER, {"validated": validated, "train": train_rows[:2], "dev": dev_rows,
                               "test": test_rows}, missing_clips={"common_voice_en_9.mp3"})
    return root


def write_l2arctic(root: Path, speakers) -> None:
    for spk in speakers:
        (root / spk / "wav").mkdir(parents=True)
        (root / spk / "transcript").mkdir()
        soundfile.write(root / spk / "wav" / "arctic_a0001.wav", tone(0.05, 44100), 44100)
        (root / spk / "transcript" / "arctic_a0001.txt").write_text("Author of the danger trail, Philip Steels, etc.")
    (root / "ABA" / "wav" / "arctic_a0002.wav").write_bytes(b"RIFF broken")
    (root / "ABA" / "transcript" / "arctic_a0002.txt").write_text("Broken audio.")


def test_commonvoice_and_l2arctic(commonvoice, tmp_path):
    l2 = tmp_path / "l2arctic"
    write_l2arctic(l2, ["ABA", "SKA", "YBAA", "ZHAA"])
    proc = ok(data_sh("accented_english", "--l2arctic_l1s", "arabic", "--nj", "2", cwd=tmp_path,
                      env={"COMMONVOICE": str(commonvoice), "L2ARCTIC": str(l2)}))
    data = tmp_path / "data"
    assert sorted(p.name for p in data.iterdir()) == [
        "dev", "test_australia", "test_england", "test_india", "test_l2arctic_arabic", "test_scotland", "test_us",
        "train"]

    train = read_dir(data / "train")
    # Default adaptation accents scotland, india, australia; ambiguous or unknown accent labels, the
    # test speaker ccc3 and the missing clip are left out.
    assert train["text"] == {"aaa1-common_voice_en_1": "don't go she said",
                             "bbb2-common_voice_en_2": "it rains in mumbai",
                             "hhh8-common_voice_en_8": "g'day mate"}
    clips = commonvoice / "en" / "clips"
    assert train["wav.scp"]["aaa1-common_voice_en_1"] == (
        f"sox -t mp3 {clips / 'common_voice_en_1.mp3'} -r 16000 -c 1 -b 16 -t wav - |")
    assert "1 whose clip is missing" in proc.stderr
    assert read_dir(data / "dev")["utt2spk"] == {"eee5-common_voice_en_20": "eee5"}
    expected_tests = {"scotland": "ccc3", "us": "ddd4", "england": "kkk1", "india": "lll2", "australia": "mmm3"}
    for accent, spk in expected_tests.items():
        assert list(read_dir(data / f"test_{accent}")["spk2utt"]) == [spk]
    train_spk = set(train["spk2utt"])
    assert not train_spk & set(expected_tests.values()) and not train_spk & {"eee5"}

    l2_set = read_dir(data / "test_l2arctic_arabic")
    assert list(l2_set["spk2utt"]) == ["ABA", "SKA", "YBAA", "ZHAA"]
    assert l2_set["text"]["ABA_arctic_a0001"] == "author of the danger trail philip steels etc"
    wav = l2 / "ABA" / "wav" / "arctic_a0001.wav"
    assert l2_set["wav.scp"]["ABA_arctic_a0001"] == f"sox {wav} -r 16000 -c 1 -b 16 -t wav - |"  # 44.1 kHz
    assert "1 with unreadable audio" in proc.stderr
    if HAVE_SOX:
        assert len(decode_pipe(l2_set["wav.scp"]["ABA_arctic_a0001"])) == 800


def test_commonvoice_old_accent_column(tmp_path):
    root = tmp_path / "cv_old"
    write_cv(root, CV_OLD_HEADER, {
        "train": [("aaa1", "a.mp3", "One.", "indian"), ("bbb2", "b.mp3", "Two.", "scotland")],
        "dev": [("ccc3", "c.mp3", "Three.", "indian")],
        "test": [("ddd4", "d.mp3", "Four.", "scotland"), ("eee5", "e.mp3", "Five.", "southatlandtic")],
    })
    ok(data_sh("accented_english", "--db_root", str(root), "--train_tsv", "train", "--train_accents", "india",
               "--test_accents", "scotland,southatlantic", cwd=tmp_path))
    assert read_dir(tmp_path / "data" / "train")["text"] == {"aaa1-a": "one"}
    assert read_dir(tmp_path / "data" / "dev")["text"] == {"ccc3-c": "three"}
    assert list(read_dir(tmp_path / "data" / "test_scotland")["text"]) == ["ddd4-d"]
    assert list(read_dir(tmp_path / "data" / "test_southatlantic")["text"]) == ["eee5-e"]


def test_accented_english_errors(commonvoice, tmp_path):
    proc = data_sh("accented_english", cwd=tmp_path)
    assert proc.returncode != 0 and "COMMONVOICE" in proc.stderr
    proc = data_sh("accented_english", "--db_root", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert proc.returncode != 0 and str(tmp_path / "nowhere" / "en" / "clips") in proc.stderr
    proc = data_sh("accented_english", "--db_root", str(commonvoice), "--test_accents", "mars", cwd=tmp_path)
    assert proc.returncode != 0 and "unknown accent id(s) ['mars']" in proc.stderr
    proc = data_sh("accented_english", "--db_root", str(commonvoice), "--test_accents", "wales", cwd=tmp_path)
    assert proc.returncode != 0 and "no utterances left" in proc.stderr and "test_wales" in proc.stderr
    l2 = tmp_path / "l2arctic"
    write_l2arctic(l2, ["ABA", "SKA", "YBAA", "ZHAA", "BWC"])
    proc = data_sh("accented_english", "--db_root", str(commonvoice), "--l2arctic", str(l2),
                   "--l2arctic_l1s", "arabic,mandarin", cwd=tmp_path)
    assert proc.returncode != 0 and str(l2 / "LXC" / "wav") in proc.stderr
