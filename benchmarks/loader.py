"""Loader benchmark: time `fcn_nuclei.data.load_dsb` on a DSB-layout dataset and print the figures as JSON.

    python benchmarks/loader.py [--data PATH] [--repeats 3]

PATH defaults to $FCN_NUCLEI_DATA, else ../shared/dsb2018/stage1_train beside the repository, else a synthetic set.
Each repeat decodes every image and mask file again (the OS file cache is warm after the first read).
"""
import argparse, json, os, platform, statistics, tempfile, time, warnings
from pathlib import Path

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
from fcn_nuclei import __version__
from fcn_nuclei.data import list_dsb_samples, load_dsb
from fcn_nuclei.sources import write_synthetic_dataset

def default_data():
    "The real data if it can be found, else a freshly written synthetic set."
    for candidate in (os.environ.get('FCN_NUCLEI_DATA'), Path(__file__).resolve().parents[2]/'shared/dsb2018/stage1_train'):
        if candidate and Path(candidate).is_dir(): return Path(candidate)
    return write_synthetic_dataset(Path(tempfile.mkdtemp())/'synthetic', images=48)

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument('--data', type=Path, default=None)
parser.add_argument('--repeats', type=int, default=3)
arguments = parser.parse_args()
data = arguments.data or default_data()
mask_files = sum(1 for folder in list_dsb_samples(data) for _ in (folder/'masks').glob('*.png'))
times = []
for _ in range(arguments.repeats):
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        samples = load_dsb(data, progress=False)
    times.append(time.perf_counter() - started)
result = dict(benchmark='load_dsb', data=str(data), images=len(samples), nuclei=sum(s.nuclei for s in samples), mask_files=mask_files,
              seconds_median=round(statistics.median(times), 2), seconds=[round(t, 2) for t in times], cores=os.cpu_count(),
              cpu=platform.processor() or platform.machine(), fcn_nuclei=__version__, date=time.strftime('%Y-%m-%d'))
print(json.dumps(result, indent=2))
