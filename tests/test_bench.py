import re

import bench


def test_bench_appends_figures_with_the_machine(tmp_path):
    out = tmp_path / 'RESULTS.md'
    bench.main(['--quick', '--only', 'render', '--out', str(out)])
    bench.main(['--quick', '--only', 'render', '--out', str(out)])
    text = out.read_text()
    assert text.startswith('# Benchmark results')
    assert text.count('\n## ') == 2                      # appended, not overwritten
    assert 'torch ' in text and 'CPU ' in text and 'GPU none' in text
    rows = re.findall(r'^\| (.+?) \| (.+?) \| ([\d.,e+-]+) \|$', text, re.M)
    names = {r[1] for r in rows}
    assert {'render 128x72 frames/s', 'render 640x360 frames/s'} <= names
    assert all(float(r[2].replace(',', '')) > 0 for r in rows)
