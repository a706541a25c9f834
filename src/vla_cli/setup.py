from setuptools import find_packages, setup

package_name = 'vla_cli'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        # <prefix>/bin is on PATH once the workspace is sourced; lib/<pkg> (console scripts, for
        # `ros2 run`) is not: the command lives in both.
        ('bin', ['bin/vla']),
    ],
    install_requires=['setuptools'],
    zip_safe=True,
    extras_require={'test': ['pytest']},
    maintainer='VLA suite maintainers',
    maintainer_email='maintainers@vla-suite.dev',
    description='The vla command: one entry point for the offline tools of the VLA suite.',
    license='Apache-2.0',
    entry_points={'console_scripts': ['vla = vla_cli.main:main']},
)
