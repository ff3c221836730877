"""mmpyconv: Pyramidal Convolution (PyConv) for the OpenMMLab 2.x toolboxes."""
import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version() -> str:
    scope = {}
    with open(os.path.join(HERE, 'mmpyconv', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


with open(os.path.join(HERE, 'README.md'), encoding='utf-8') as f:
    long_description = f.read()



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
    python_requires='>=3.8',
    install_requires=['torch>=1.8', 'mmengine>=0.8.0,<1.0', mmcv_requirement()],
    extras_require={
        'pretrain': ['mmpretrain>=1.0.0,<1.3'],
        'det': ['mmdet>=3.0.0,<3.4'],
        'seg': ['mmsegmentation>=1.0.0,<1.3', 'ftfy', 'regex'],
        'action': ['mmaction2>=1.0.0,<1.3'],
        'tests': ['pytest'],
    },
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    zip_safe=False,
)
