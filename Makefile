# The two commands of the README, and their parts.
#   make demo   the trained VLA driving the simulated arm through the graph (Ctrl-C to stop, or
#               DURATION=seconds; GRAPH=config/graphs/expert.yaml: the scripted expert instead;
#               VIEW=1 adds the browser view: pip install rerun-sdk, open the URL it prints)
#   make test   lint + every package's tests (colcon test) + cross-package tests
#   make policy demonstrations -> train -> export -> closed-loop evaluation
#               (POLICY=flow_scene|flow|act)
#   make dagger one DAgger round on that policy: rollouts labelled by the expert -> retrain -> ...
# Both set up the workspace first (tools/vla_setup.py: idempotent, ~1 s when nothing changed).

SHELL := /bin/bash
PYTHON ?= python3
IN_ENV := set -o pipefail; . tools/env.sh &&
DURATION ?=
VIEW ?=
GRAPH ?= config/graphs/deploy.yaml
PYTEST_ARGS ?=
POLICY ?= flow_scene
DEMOS ?= 100
EPISODES ?= 200
ROUND ?= 1
DAGGER_EPISODES ?= 30

.PHONY: setup demo policy dagger test lint unit-test system-test check-builds bench clean \
	lerobot-env lerobot-test

setup:
	@$(PYTHON) tools/vla_setup.py

demo: setup
	@$(IN_ENV) vla run $(GRAPH) --processes $(if $(DURATION),--duration $(DURATION)) \
		$(if $(VIEW),--view)

# Demonstrations -> trained policy -> ONNX export (parity-gated) -> closed-loop evaluation, all in
# simulation: DEMOS expert episodes per task, POLICY=flow_scene|flow|act (sim_$(POLICY).yaml),
# EPISODES seeded episodes per task.
policy: setup
	@$(IN_ENV) vla demos --out out/dataset_sim \
		--episodes-per-task $(DEMOS) --overwrite && \
	vla train --config src/vla_learning/config/sim_$(POLICY).yaml --overwrite && \
	vla export --checkpoint out/runs/sim_$(POLICY)/last.pt \
		--output out/exports/sim_$(POLICY) && \
	vla eval --artifact out/exports/sim_$(POLICY) --episodes $(EPISODES) \
		--out out/eval/sim_$(POLICY)

# DAgger round ROUND on the current export of POLICY: DAGGER_EPISODES policy rollouts per task
# (half with the expert taking 30 % of the re-plan periods, half the policy alone), every frame
# labelled by the expert; then retrain on the demonstrations plus every round so far, export and
# evaluate again. Run `make policy` first; repeat with ROUND=2, 3, ...
dagger: setup
	@$(IN_ENV) half=$$(( $(DAGGER_EPISODES) / 2 )); seed=$$(( 1000 * $(ROUND) )); \
	vla dagger --artifact out/exports/sim_$(POLICY) --beta 0.3 \
		--out out/dagger/sim_$(POLICY)_r$(ROUND)a --episodes-per-task $$half --seed $$seed \
		--overwrite && \
	vla dagger --artifact out/exports/sim_$(POLICY) --beta 0 \
		--out out/dagger/sim_$(POLICY)_r$(ROUND)b --episodes-per-task $$half \
		--seed $$(( seed + half )) --overwrite && \
	rounds=$$(ls -d out/dagger/sim_$(POLICY)_r* | paste -sd, -) && \
	vla train --config src/vla_learning/config/sim_$(POLICY).yaml --overwrite \
		--set "data.recorded.extra_paths=[$$rounds]" && \
	vla export --checkpoint out/runs/sim_$(POLICY)/last.pt \
		--output out/exports/sim_$(POLICY) && \
	vla eval --artifact out/exports/sim_$(POLICY) --episodes $(EPISODES) \
		--out out/eval/sim_$(POLICY)

# Style, the Dockerfiles, every import declared in its package.xml (tools/rosdep_keys.yaml), the
# package boundaries (import-linter contracts) and types (mypy; both configured in pyproject.toml).
lint: setup
	@$(IN_ENV) ruff check . && ruff format --check . && hadolint docker/Dockerfile.*
	@$(IN_ENV) python tools/check_package_deps.py
	@$(IN_ENV) mypy
	@$(IN_ENV) out=$$(lint-imports --no-cache 2>&1) || { echo "$$out"; exit 1; }; \
		echo "$$out" | grep '^Contracts:'
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

# Every package alone: colcon build --packages-up-to <pkg> in an empty temp base, then each of its
# modules imports from that install only (catches a dependency package.xml does not name).
check-builds: setup
	@$(IN_ENV) python tools/check_isolated_builds.py

# The optional LeRobot round trip (tests marked `lerobot`, skipped where .venv-lerobot is absent):
# LeRobot 0.6.1 loads our v3 export and lerobot-edit-dataset edits it. Its own environment, as it
# needs Python >= 3.12 and torch < 2.12 (requirements/lerobot.txt; several GB, once).
LEROBOT_PYTHON ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12; do \
	$$p -c "" 2>/dev/null && { command -v $$p; break; }; done)

lerobot-env: .venv-lerobot/.stamp

.venv-lerobot/.stamp: requirements/lerobot.txt
	@test -n "$(LEROBOT_PYTHON)" || { echo "lerobot-env: no python3.12 found (LEROBOT_PYTHON=...)"; exit 2; }
	$(LEROBOT_PYTHON) -m venv .venv-lerobot
	.venv-lerobot/bin/python -m pip install -q -r requirements/lerobot.txt
	touch $@

lerobot-test: setup lerobot-env
	@$(IN_ENV) python -m pytest -q -m lerobot src/vla_data/test/test_lerobot.py $(PYTEST_ARGS)

bench: setup
	@$(IN_ENV) for b in bench/bench_*.py; do echo "== $$b"; python $$b || exit 1; done

clean:
	rm -rf build install log .venv
