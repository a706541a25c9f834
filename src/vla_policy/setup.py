from pathlib import Path

from setuptools import find_packages, setup

package_name = 'vla_policy'
# Exports shipped with the package (models/<name>/model.onnx + policy_spec.json), installed to
# share/vla_policy/models/<name>: the policy node loads package://vla_policy/models/<name>.
models = sorted(p for p in Path('models').glob('*/*') if p.is_file())
model_files = [
    (f'share/{package_name}/{folder.as_posix()}', [str(p) for p in models if p.parent == folder])
    for folder in sorted({p.parent for p in models})
]

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        *model_files,
    ],
    install_requires=['setuptools', 'numpy', 'onnxruntime'],
    zip_safe=True,
    extras_require={'test': ['pytest']},
    maintainer='VLA suite maintainers',
    maintainer_email='maintainers@vla-suite.dev',
    description=(
        'The VLA policy node, inference backends (ONNX Runtime, PyTorch, TensorRT), engine cache '
        'and closed-loop evaluation.'
    ),
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'policy_node = vla_policy.policy_node:main',
            # renamed in 0.2 (vla <command>); these print a deprecation line
            'vla-build-engine = vla_policy.renamed_commands:vla_build_engine',
        ],
    },
)
