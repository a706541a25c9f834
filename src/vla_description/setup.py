from glob import glob

from setuptools import find_packages, setup

package_name = 'vla_description'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/urdf', glob('urdf/*.urdf')),
    ],
    install_requires=['setuptools', 'numpy', 'transforms3d'],
    zip_safe=True,
    extras_require={'test': ['pytest']},
    maintainer='VLA suite maintainers',
    maintainer_email='maintainers@vla-suite.dev',
    description='Robot description (URDF) of the VLA suite tabletop arm.',
    license='Apache-2.0',
    entry_points={'console_scripts': []},
)
