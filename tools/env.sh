# Source this file (bash) to enter the workspace environment made by tools/vla_setup.py:
#   . tools/env.sh
# With a real ROS 2 install it sources /opt/ros/<distro>; without one it uses the ROS 2 Jazzy wheels
# in .venv. Either way it then sources our built workspace and selects our Fast DDS profile.
# Safe to source before anything is built: missing pieces are skipped.

_vla_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_vla_mode_file="$_vla_root/.venv/vla_ros_mode"
_vla_mode="wheels"
[ -f "$_vla_mode_file" ] && _vla_mode="$(cat "$_vla_mode_file")"

if [ "$_vla_mode" != "wheels" ] && [ -f "/opt/ros/$_vla_mode/setup.bash" ]; then
  # shellcheck disable=SC1090
  . "/opt/ros/$_vla_mode/setup.bash"
fi

if [ -f "$_vla_root/.venv/bin/activate" ]; then
  VIRTUAL_ENV_DISABLE_PROMPT=1 . "$_vla_root/.venv/bin/activate"
fi

if [ "$_vla_mode" = "wheels" ]; then
  # The wheels install share/<pkg> under the environment's prefix; CMake and ament look there.
  case ":${AMENT_PREFIX_PATH:-}:" in *":$_vla_root/.venv:"*) ;; *)
    export AMENT_PREFIX_PATH="$_vla_root/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}";;
  esac
  case ":${CMAKE_PREFIX_PATH:-}:" in *":$_vla_root/.venv:"*) ;; *)
    export CMAKE_PREFIX_PATH="$_vla_root/.venv${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}";;
  esac
fi

# Interfaces the environment lacked (tf2_msgs), built from their definitions by the set-up step.
if [ -f "$_vla_root/.venv/ros_underlay/local_setup.bash" ]; then
  # shellcheck disable=SC1091
  COLCON_CURRENT_PREFIX="$_vla_root/.venv/ros_underlay" . "$_vla_root/.venv/ros_underlay/local_setup.bash"
fi
# VLA_INSTALL_BASE picks another install of this workspace (tools/check_isolated_builds.py builds
# each package alone into a temporary one); "none" enters the environment without any.
_vla_install="${VLA_INSTALL_BASE:-$_vla_root/install}"
if [ -f "$_vla_install/local_setup.bash" ]; then
  # shellcheck disable=SC1091
  COLCON_CURRENT_PREFIX="$_vla_install" . "$_vla_install/local_setup.bash"
fi

export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# Our profile: a shared-memory segment that fits camera frames (see config/fastdds.xml, README).
# Fast DDS 2.x reads FASTRTPS_*, 3.x reads FASTDDS_*; an explicit choice by the user wins.
if [ -z "${FASTDDS_DEFAULT_PROFILES_FILE:-}" ] && [ -z "${FASTRTPS_DEFAULT_PROFILES_FILE:-}" ]; then
  export FASTDDS_DEFAULT_PROFILES_FILE="$_vla_root/config/fastdds.xml"
  export FASTRTPS_DEFAULT_PROFILES_FILE="$_vla_root/config/fastdds.xml"
fi
export VLA_WORKSPACE="$_vla_root"
unset _vla_root _vla_mode _vla_mode_file _vla_install
