"""mmpyconv: Pyramidal Convolution (PyConv) for the OpenMMLab 2.x toolboxes."""
import os
import shutil

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version() -> str:
    scope = {}
    with open(os.path.join(HERE, 'mmpyconv', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


with open(os.path.join(HERE, 'README.md'), encoding='utf-8') as f:
    long_description = f.read()



# What mim reads from an installed OpenMMLab package (`mim search mmpyconv`, `mim train mmpyconv
# CONFIG`), in `<site-packages>/mmpyconv/.mim/`; mmpyconv/hub.py reads the model index there too.
MIM_FILES = ('model-index.yml', 'configs', 'tools')


class BuildPyWithMim(build_py):
    """build_py that also copies MIM_FILES into mmpyconv/.mim/ of the build directory.

    Copies, not the symlinks of OpenMMLab's `add_mim_extension`: the source tree stays as it is.
    An editable install (PEP 660) has no package folder in site-packages, so mim cannot find it
    and nothing is copied; mmpyconv/hub.py then reads the checkout's model-index.yml.
    """

    def run(self) -> None:
        super().run()
        if getattr(self, 'editable_mode', False):
            return
        target = os.path.join(self.build_lib, 'mmpyconv', '.mim')
        self.mkpath(target)
        for name in MIM_FILES:
            src, dst = os.path.join(HERE, name), os.path.join(target, name)
            if os.path.isdir(dst):
                shutil.rmtree(dst)  # files an earlier build copied and the source has dropped
            if os.path.isdir(src):
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
            elif os.path.isfile(src):
                self.copy_file(src, dst, preserve_mode=False)
            else:
                self.warn(f'{src} is missing, so this build has no mmpyconv/.mim/{name}, which '
                          'mim and mmpyconv/hub.py read')


def mmcv_requirement() -> str:
    """mmcv, or mmcv-lite where that is what is installed.

    The core (operator, backbones) needs only mmcv's Python part, so an environment that has
    mmcv-lite keeps it instead of pip compiling mmcv from source (OpenMMLab's setup files make
    the same choice between mmcv and mmcv-full).
    """
    from importlib import metadata
    try:
        metadata.version('mmcv-lite')
    except metadata.PackageNotFoundError:
        return 'mmcv>=2.0.0,<2.2.0'
    return 'mmcv-lite>=2.0.0,<2.2.0'


# Core: torch, mmengine, mmcv. Each toolbox is an extra; `import mmpyconv` imports none.
setup(
    name='mmpyconv',
    version=read_version(),
    description='Pyramidal Convolution (PyConv) backbones and heads for OpenMMLab 2.x',
    long_description=long_description,
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(include=['mmpyconv', 'mmpyconv.*']),
    # the table of GPU measurements impl='auto' reads (tools/analysis/gpu_check.py writes it)
    package_data={'mmpyconv.ops': ['auto_table.json']},
    python_requires='>=3.8',
    # torch 2.0: public load-state-dict pre-hooks and torch.device as a context manager (the
    # backbones, the converters); impl='triton' needs torch >= 2.4 (torch.library.custom_op)
    # and says so. mmengine 0.8: what mmpretrain 1.x needs too.
    install_requires=['torch>=2.0', 'mmengine>=0.8.0,<1.0', mmcv_requirement()],
    extras_require={
        'pretrain': ['mmpretrain>=1.0.0,<1.3'],
        'det': ['mmdet>=3.0.0,<3.4'],
        'seg': ['mmsegmentation>=1.0.0,<1.3', 'ftfy', 'regex'],
        'action': ['mmaction2>=1.0.0,<1.3'],
        # pytest, the linter .ci/run runs, and mim (`mim search mmpyconv` is tested). openmim
        # itself is installed by tools/install.sh without its opendatalab dependency, which
        # pins setuptools 60 (torch needs >= 77).
        'tests': ['pytest', 'ruff==0.17.6'],
    },
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    cmdclass={'build_py': BuildPyWithMim},
    zip_safe=False,
)
