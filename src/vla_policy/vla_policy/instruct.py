"""Give the running policy an operator instruction, without the ``ros2`` CLI.

    python -m vla_policy.instruct "push the green block into the yellow target region"
    python -m vla_policy.instruct --clear          # back to the task's instruction

Publishes on ``instruction/operator`` (latched), which overrides the task's instruction in the
policy node until cleared, and waits until the policy node has it.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import sys
import time

__all__ = ['main']


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='instruct', description=__doc__.split('\n')[0])
    parser.add_argument('instruction', nargs='?', default='', help='what the policy should do')
    parser.add_argument('--clear', action='store_true', help="back to the task's instruction")
    parser.add_argument('--namespace', default='', help='namespace of the policy node')
    parser.add_argument('--timeout', type=float, default=10.0, help='wait for the policy [s]')
    args = parser.parse_args(argv)
    text = '' if args.clear else args.instruction.strip()
    if not text and not args.clear:
        parser.error('give an instruction, or --clear')

    import rclpy
    from std_msgs.msg import String

    from vla_ros_common import qos

    rclpy.init()
    node = rclpy.create_node('instruct', namespace=args.namespace or None)
    try:
        pub = node.create_publisher(String, 'instruction/operator', qos.LATCHED)
        deadline = time.monotonic() + args.timeout
        while pub.get_subscription_count() == 0:  # no policy node listening yet
            if time.monotonic() > deadline:
                print(
                    f'error: no subscriber on {pub.topic_name} within {args.timeout:g} s '
                    '(is the policy node running, in this ROS_DOMAIN_ID?)',
                    file=sys.stderr,
                )
                return 1
            rclpy.spin_once(node, timeout_sec=0.1)
        pub.publish(String(data=text))
        pub.wait_for_all_acked(rclpy.duration.Duration(seconds=args.timeout))
        print(f'operator instruction: "{text}"' if text else 'operator instruction cleared')
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    sys.exit(main())
