import pytest

from saesite.errors import SaesiteError
from saesite.site.labels import Labels, load_labels


def test_load_labels_reads_csv_without_a_header(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("0,zero\n\n2,two\n")
    assert load_labels(path) == {0: "zero", 2: "two"}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("l.csv", "id,label\nx,bad\n", "not an integer"),
        ("l.csv", "1,a,b\n", "expected 2: id,label"),
        ("l.csv", "1,a\n1,b\n", "labelled twice"),
        ("l.json", "[1, 2]", "expected an object"),
        ("l.json", "{not json", "not valid JSON"),
        ("l.json", '{"1": 5}', "not a string"),
        ("missing.csv", None, "does not exist"),
    ],
)
def test_bad_labels_files_give_one_clear_error(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(SaesiteError, match=message):
        load_labels(path)


def test_a_file_label_wins_over_the_record_s_and_the_site_s_and_an_empty_one_removes_it(tmp_path):
    path = tmp_path / "l.json"
    path.write_text('{"0": "from file", "2": ""}')
    labels = Labels({"labels": {"0": "site", "1": "site", "2": "site"}}, str(path), 3)
    assert labels.of({"index": 0, "label": "record"}) == "from file"
    assert labels.of({"index": 1, "label": "record"}) == "record"
    assert labels.of({"index": 1, "label": None}) == "site"
    assert labels.of({"index": 2, "label": "record"}) is None
