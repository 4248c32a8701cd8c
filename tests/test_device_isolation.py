import subprocess
import sys


def test_device_never_imports_tensorflow():
    code = ("import sys, device, device.cli, device.recognizer, device.indexing, device.model, device.melody, "
            "device.shortlist, device.alignment, device.matcher, device.explain, device.microphone, "
            "device.listening, device.bench; "
            "from device.model import MelodyModel; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'training', 'converter', "
            "'matplotlib')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
