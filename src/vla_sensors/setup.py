from setuptools import find_packages, setup

package_name = 'vla_sensors'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools', 'numpy', 'opencv-python', 'pyserial', 'pyyaml'],
    zip_safe=True,
    extras_require={'test': ['pytest']},
    maintainer='VLA suite maintainers',
    maintainer_email='maintainers@vla-suite.dev',
    description='Camera and IMU drivers and nodes of the VLA suite.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'camera_node = vla_sensors.camera_node:main',
            'imu_node = vla_sensors.imu_node:main',
        ],
    },
)
