from setuptools import find_packages, setup

package_name = 'vla_control'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    # onnxruntime (evaluation) and torch + onnx (training) come from pip, see requirements/.
    install_requires=['setuptools', 'numpy'],
    zip_safe=True,
    extras_require={'test': ['pytest']},
    maintainer='VLA suite maintainers',
    maintainer_email='maintainers@vla-suite.dev',
    description='Residual PID/MPC tracking controller: residual training and ONNX evaluation.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'controller_node = vla_control.controller_node:main',
        ],
    },
)
