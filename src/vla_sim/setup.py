from setuptools import find_packages, setup

package_name = 'vla_sim'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
    ],
    install_requires=['setuptools', 'numpy', 'mujoco', 'tqdm', 'transforms3d'],
    zip_safe=True,
    extras_require={'test': ['pytest']},
    maintainer='VLA suite maintainers',
    maintainer_email='maintainers@vla-suite.dev',
    description='MuJoCo tabletop arm, push tasks and scripted expert for the VLA suite.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'sim_node = vla_sim.sim_node:main',
            # renamed in 0.2 (vla <command>); these print a deprecation line
            'evaluate_policy = vla_sim.renamed_commands:evaluate_policy',
            'evaluate_expert = vla_sim.renamed_commands:evaluate_expert',
        ],
    },
)
