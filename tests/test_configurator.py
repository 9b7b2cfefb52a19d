import pytest

from configurator import ConfigError, apply_config, config_keys


def defaults():
    return dict(BATCH_SIZE=20, LR=3e-5, USE_FILM=True, RUN_NAME='demo', DEVICE=None,
                AR_RANGE=(10, 20), lowercase_is_ignored=5, np=object())


def test_keys_are_upper_case_plain_values():
    assert config_keys(defaults()) == ['AR_RANGE', 'BATCH_SIZE', 'DEVICE', 'LR', 'RUN_NAME', 'USE_FILM']


def test_preset_then_overrides_in_order(tmp_path):
    preset = tmp_path / 'p.py'
    preset.write_text("BATCH_SIZE = 4\nLR = 1  # an int is fine for a float\nRUN_NAME = 'preset'\n"
                      "import math\n_private = 3\n")
    g = defaults()
    cfg = apply_config(g, [str(preset), '--BATCH_SIZE=8', '--USE_FILM=False', '--RUN_NAME=cli run',
                           '--AR_RANGE=(3,5)', '--DEVICE=cuda'])
    assert g['BATCH_SIZE'] == 8 and cfg['BATCH_SIZE'] == 8          # the flag wins over the preset
    assert g['LR'] == 1.0 and isinstance(g['LR'], float)
    assert g['USE_FILM'] is False
    assert g['RUN_NAME'] == 'cli run'                                # bare strings need no quotes
    assert g['AR_RANGE'] == (3, 5) and isinstance(g['AR_RANGE'], tuple)
    assert g['DEVICE'] == 'cuda'
    assert set(cfg) == set(config_keys(defaults()))


@pytest.mark.parametrize('arg, message', [
    ('--BATCH_SIZ=3', 'unknown config key BATCH_SIZ'),
    ('--BATCH_SIZE=2.5', 'BATCH_SIZE expects int'),
    ('--BATCH_SIZE=many', "cannot parse 'many' as a int"),
    ('--USE_FILM=1', 'USE_FILM expects bool'),
    ('--LR=True', 'LR expects float'),
    ('--RUN_NAME=3', 'RUN_NAME expects str'),
    ('--BATCH_SIZE', 'expected --NAME=value'),
    ('missing.py', 'preset file not found'),
    ('config.txt', 'expected a preset file'),
])
def test_bad_arguments_fail_clearly(arg, message):
    with pytest.raises(ConfigError, match=message.replace('(', r'\(')):
        apply_config(defaults(), [arg])


def test_unknown_key_in_preset_names_the_file(tmp_path):
    preset = tmp_path / 'bad.py'
    preset.write_text("BATCH_SIZE = 4\nBACH_SIZE = 5\n")
    with pytest.raises(ConfigError, match=r'bad\.py: unknown config key BACH_SIZE'):
        apply_config(defaults(), [str(preset)])


def test_script_defaults_reads_constants_without_running(tmp_path):
    from configurator import script_defaults
    script = tmp_path / 's.py'
    script.write_text("import sys\nA = 3  # why\nB, C = 0.9, 'x'\nD = {'k': (1, 2)}\nE = len(sys.argv)\n"
                      "lower = 5\nraise SystemExit('never run')\n")
    assert script_defaults(str(script)) == {'A': 3, 'B': 0.9, 'C': 'x', 'D': {'k': (1, 2)}}


def test_every_preset_matches_its_script():
    """A preset with a misspelt or mistyped key fails here, not hours into a GPU job."""
    import glob
    import os
    from configurator import script_defaults
    from tests.conftest import ROOT
    presets = sorted(glob.glob(os.path.join(ROOT, 'config', '*.py')))
    assert presets
    presets += sorted(glob.glob(os.path.join(ROOT, 'experiments', '[a-z][0-9]_*.py')))   # the experiments' train.py presets
    assert any(p.endswith('h4_copy_gate_tf.py') for p in presets)
    assert any(p.endswith('_vq.py') for p in presets)  # an experiment's tokenizer preset (train_vqvae.py)
    for preset in presets:
        name = os.path.basename(preset)
        script = 'train_vqvae.py' if name.startswith('vqvae') or name.endswith('_vq.py') else 'idm.py' if name.startswith('idm') else 'train.py'
        cfg = apply_config(script_defaults(os.path.join(ROOT, script)), [preset])
        assert cfg, preset
