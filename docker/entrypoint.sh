#!/usr/bin/env bash
# Enter the workspace environment (ROS, .venv, our install, Fast DDS profile), then run the command.
set -e
# shellcheck disable=SC1091
. /ws/tools/env.sh
exec "$@"
