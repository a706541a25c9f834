# The two commands of the README, and their parts.
#   make demo   the trained VLA driving the simulated arm through the graph (Ctrl-C to stop, or
#               DURATION=seconds; GRAPH=config/graphs/expert.yaml: the scripted expert instead)
#   make test   lint + every package's tests (colcon test) + cross-package tests
#   make policy demonstrations -> train -> export -> closed-loop evaluation
#               (POLICY=flow_scene|flow|act)
#   make dagger one DAgger round on that policy: rollouts labelled by the expert -> retrain -> ...
# Both set up the workspace first (tools/vla_setup.py: idempotent, ~1 s when nothing changed).

SHELL := /bin/bash
PYTHON ?= python3
IN_ENV := set -o pipefail; . tools/env.sh &&
DURATION ?=
GRAPH ?= config/graphs/deploy.yaml
PYTEST_ARGS ?=
POLICY ?= flow_scene
DEMOS ?= 100
EPISODES ?= 200
ROUND ?= 1
DAGGER_EPISODES ?= 30

.PHONY: setup demo policy dagger test lint unit-test system-test bench clean

setup:
	@$(PYTHON) tools/vla_setup.py

demo: setup
	@$(IN_ENV) python -m vla_ros_common.runner $(GRAPH) --processes $(if $(DURATION),--duration $(DURATION))

# Demonstrations -> trained policy -> ONNX export (parity-gated) -> closed-loop evaluation, all in
# simulation: DEMOS expert episodes per task, POLICY=flow_scene|flow|act (sim_$(POLICY).yaml),
# EPISODES seeded episodes per task.
policy: setup
	@$(IN_ENV) python -m vla_teleop.dataset.sim_demos --out out/dataset_sim \
		--episodes-per-task $(DEMOS) --overwrite && \
	python -m vla_learning.train --config src/vla_learning/config/sim_$(POLICY).yaml && \
	python -m vla_learning.export --checkpoint out/runs/sim_$(POLICY)/last.pt \
		--output out/exports/sim_$(POLICY) && \
	python -m vla_policy.evaluate --artifact out/exports/sim_$(POLICY) --episodes $(EPISODES) \
		--out out/eval/sim_$(POLICY)

# DAgger round ROUND on the current export of POLICY: DAGGER_EPISODES policy rollouts per task
# (half with the expert taking 30 % of the re-plan periods, half the policy alone), every frame
# labelled by the expert; then retrain on the demonstrations plus every round so far, export and
# evaluate again. Run `make policy` first; repeat with ROUND=2, 3, ...
dagger: setup
	@$(IN_ENV) half=$$(( $(DAGGER_EPISODES) / 2 )); seed=$$(( 1000 * $(ROUND) )); \
	python -m vla_policy.dagger_sim --artifact out/exports/sim_$(POLICY) --beta 0.3 \
		--out out/dagger/sim_$(POLICY)_r$(ROUND)a --episodes-per-task $$half --seed $$seed \
		--overwrite && \
	python -m vla_policy.dagger_sim --artifact out/exports/sim_$(POLICY) --beta 0 \
		--out out/dagger/sim_$(POLICY)_r$(ROUND)b --episodes-per-task $$half \
		--seed $$(( seed + half )) --overwrite && \
	rounds=$$(ls -d out/dagger/sim_$(POLICY)_r* | paste -sd, -) && \
	python -m vla_learning.train --config src/vla_learning/config/sim_$(POLICY).yaml \
		--set "data.recorded.extra_paths=[$$rounds]" && \
	python -m vla_learning.export --checkpoint out/runs/sim_$(POLICY)/last.pt \
		--output out/exports/sim_$(POLICY) && \
	python -m vla_policy.evaluate --artifact out/exports/sim_$(POLICY) --episodes $(EPISODES) \
		--out out/eval/sim_$(POLICY)

lint: setup
	@$(IN_ENV) ruff check . && ruff format --check . && hadolint docker/Dockerfile.*
	@echo "lint: ok"

# Each package's own tests through colcon (pure core and node tests), then the cross-package and
# end-to-end tests under test/. Every pytest process reserves its own ROS_DOMAIN_ID (conftest.py).
unit-test: setup
	@$(IN_ENV) colcon test --base-paths src --event-handlers console_cohesion+ summary+ \
		--return-code-on-test-failure --pytest-args -q $(PYTEST_ARGS)
	@$(IN_ENV) colcon test-result --all | tee log/test-result.txt | tail -n 1
	@# A package whose tests colcon did not find would pass silently: refuse zero tests.
	@! grep -q '^Summary: 0 tests' log/test-result.txt

system-test: setup
	@$(IN_ENV) python -m pytest test -q $(PYTEST_ARGS)

test: lint unit-test system-test

bench: setup
	@$(IN_ENV) for b in bench/bench_*.py; do echo "== $$b"; python $$b || exit 1; done

clean:
	rm -rf build install log .venv
