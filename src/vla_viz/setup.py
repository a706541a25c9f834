from setuptools import find_packages, setup

package_name = 'vla_viz'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools', 'numpy', 'transforms3d'],
    # The browser view: pip install 'rerun-sdk>=0.41' (optional; the markers need none of it).
    extras_require={'test': ['pytest'], 'web': ['rerun-sdk>=0.41']},
    zip_safe=True,
    maintainer='VLA suite maintainers',
    maintainer_email='maintainers@vla-suite.dev',
    description='Views of the VLA graph: rviz markers and a browser view (rerun).',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'marker_node = vla_viz.marker_node:main',
            'web_view_node = vla_viz.web_view_node:main',
        ],
    },
)
