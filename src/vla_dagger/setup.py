from setuptools import find_packages, setup

package_name = 'vla_dagger'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools', 'numpy'],
    zip_safe=True,
    extras_require={'test': ['pytest']},
    maintainer='VLA suite maintainers',
    maintainer_email='maintainers@vla-suite.dev',
    description='DAgger for the VLA suite: policy rollouts labelled by an expert.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            # renamed in 0.2 (vla <command>); these print a deprecation line
            'dagger_sim = vla_dagger.renamed_commands:dagger_sim',
        ],
    },
)
