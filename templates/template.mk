# Dataflow Flex Template: build the image and the template spec, run, update or drain the job.
# Included by the main Makefile (`include templates/template.mk`); works alone too: `make -f templates/template.mk ...`.
# templates/README.md walks through the prerequisites and every variable. `make template-vars` shows what is set.
#
#   make template-build PROJECT=acme-data BUCKET=acme-currents-dataflow
#   make template-run   PROJECT=acme-data BUCKET=acme-currents-dataflow \
#        SOURCE=pubsub:projects/acme-data/subscriptions/currents-events \
#        CONNECTORS=gs://acme-currents-config/connectors.yaml DEAD_LETTER=gs://acme-currents-dead-letters/prod

CURRENTS_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
# Including this file never changes the including Makefile's default goal (restored at the end).
_currents_default_goal := $(.DEFAULT_GOAL)

# --- where things go -----------------------------------------------------------------------------------------------
PROJECT ?=
REGION ?= us-central1
REPOSITORY ?= beam-currents
IMAGE_NAME ?= beam-currents
# One tag per commit (`-dirty` when the tree has changes): the image and the template spec share it, so a run
# always gets the image its template was built from.
# (Worked out once, on first use, so a long build cannot see two different tags.)
TAG ?= $(eval TAG := $(shell git -C '$(CURRENTS_ROOT)' describe --always --dirty 2>/dev/null || echo latest))$(TAG)
IMAGE ?= $(REGION)-docker.pkg.dev/$(PROJECT)/$(REPOSITORY)/$(IMAGE_NAME):$(TAG)
BUCKET ?=
TEMPLATE_PATH ?= gs://$(BUCKET)/templates/beam-currents-$(TAG).json
STAGING_LOCATION ?= gs://$(BUCKET)/staging
TEMP_LOCATION ?= gs://$(BUCKET)/tmp

# --- how the image is built ----------------------------------------------------------------------------------------
# cloudbuild: build on Cloud Build (no local Docker needed); docker: local `docker build` + `docker push`
BUILDER ?= cloudbuild
# Cloud Build region; empty = Cloud Build's global pool
CLOUDBUILD_REGION ?=
# Tag of gcr.io/dataflow-templates-base/python311-template-launcher-base: a dated one, as templates/Dockerfile's default
LAUNCHER_TAG ?= 20260122_RC00
# true: bake a JRE and Beam's Kafka expansion-service jar into the image (needed for kafka: sources)
WITH_KAFKA ?= false
TEMPLATE_OUT ?= $(CURRENTS_ROOT)/out/template

# --- the job -------------------------------------------------------------------------------------------------------
JOB_NAME ?= beam-currents
SERVICE_ACCOUNT ?= beam-currents@$(PROJECT).iam.gserviceaccount.com
SOURCE ?=
CONNECTORS ?=
DEAD_LETTER ?=
# More template parameters, `~`-separated: PARAMETERS='max_event_bytes=500000~event_time=field'
PARAMETERS ?=
# Custom SDK containers run on Runner v2, the default for Python; named explicitly all the same.
EXPERIMENTS ?= use_runner_v2
MAX_WORKERS ?=
WORKER_MACHINE_TYPE ?=
# UPDATE=1 replaces the running job JOB_NAME in place (see "Update a running job" in templates/README.md).
UPDATE ?=
# With UPDATE=1, renamed step prefixes, `~`-separated: TRANSFORM_NAME_MAPPINGS='connector/amp=connector/amplitude'
TRANSFORM_NAME_MAPPINGS ?=

# $(call require,VAR ...): stop with one message naming every empty VAR ("set PROJECT=... (what it is, e.g. ...)").
_missing = $(strip $(foreach v,$(1),$(if $(strip $($(v))),,$(v))))
_wanted = $(1)=... ($(_about_$(1)), e.g. $(1)=$(_example_$(1)))
require = $(if $(call _missing,$(1)),$(error make $@: set $(call _wanted,$(firstword $(call _missing,$(1))))$(foreach \
	v,$(wordlist 2,99,$(call _missing,$(1))),; set $(call _wanted,$(v)))))
require_cmd = $(if $(shell command -v $(1) 2>/dev/null),,$(error make $@: $(1) is not on PATH: $(2)))

_about_PROJECT := the Google Cloud project that runs the job
_example_PROJECT := acme-data
_about_REGION := the Dataflow and Artifact Registry region
_example_REGION := europe-west1
_about_REPOSITORY := the Artifact Registry Docker repository
_example_REPOSITORY := beam-currents
_about_BUCKET := a Cloud Storage bucket for the template spec, staging and temp files
_example_BUCKET := acme-currents-dataflow
_about_IMAGE := the image to build and run
_example_IMAGE := europe-west1-docker.pkg.dev/acme-data/beam-currents/beam-currents:v1
_about_TEMPLATE_PATH := the gs:// path of the template spec
_example_TEMPLATE_PATH := gs://acme-currents-dataflow/templates/beam-currents.json
_about_JOB_NAME := the Dataflow job name (keep it stable: updates go by name)
_example_JOB_NAME := beam-currents
_about_SERVICE_ACCOUNT := the service account of the launcher and the workers
_example_SERVICE_ACCOUNT := beam-currents@acme-data.iam.gserviceaccount.com
_about_SOURCE := the --source of the job
_example_SOURCE := pubsub:projects/acme-data/subscriptions/currents-events
_about_CONNECTORS := the connector config, a gs:// YAML/JSON file
_example_CONNECTORS := gs://acme-currents-config/connectors.yaml
_about_DEAD_LETTER := a gs:// folder for dead letters
_example_DEAD_LETTER := gs://acme-currents-dead-letters/prod
_about_BUILDER := cloudbuild or docker
_example_BUILDER := cloudbuild

_GCLOUD_HINT := install the Google Cloud CLI, https://cloud.google.com/sdk/docs/install
_IMAGE_BUILD_ARGS := --build-arg LAUNCHER_TAG=$(LAUNCHER_TAG) --build-arg WITH_KAFKA=$(WITH_KAFKA) \
	--build-arg SDK_CONTAINER_IMAGE=$(IMAGE)

.PHONY: template-constraints template-build template-image template-image-cloudbuild template-image-docker template-image-unknown \
	template-spec template-run \
	template-update template-drain template-vars

## template-constraints: regenerate templates/constraints.txt, the image's pinned runtime dependencies
template-constraints:
	'$(CURRENTS_ROOT)/templates/constraints.sh'

## template-build: the image (launcher + SDK worker) and the template spec that points at it
template-build: template-image template-spec

template-image: template-image-$(or $(filter cloudbuild docker,$(BUILDER)),unknown)

template-image-unknown:
	$(error make template-build: BUILDER=$(BUILDER) is not a builder: set BUILDER=cloudbuild or BUILDER=docker)

template-image-cloudbuild:
	$(call require,PROJECT REGION REPOSITORY IMAGE)
	$(call require_cmd,gcloud,$(_GCLOUD_HINT))
	@mkdir -p '$(TEMPLATE_OUT)'
	@printf '%s\n' '{"steps": [{"name": "gcr.io/cloud-builders/docker", "args": ["build", "-f", "templates/Dockerfile",' \
	  '  "--build-arg", "LAUNCHER_TAG=$(LAUNCHER_TAG)", "--build-arg", "WITH_KAFKA=$(WITH_KAFKA)",' \
	  '  "--build-arg", "SDK_CONTAINER_IMAGE=$(IMAGE)", "-t", "$(IMAGE)", "."]}],' \
	  ' "images": ["$(IMAGE)"], "timeout": "1800s"}' > '$(TEMPLATE_OUT)/cloudbuild.json'
	gcloud builds submit '$(CURRENTS_ROOT)' --project='$(PROJECT)' --config='$(TEMPLATE_OUT)/cloudbuild.json'$(if \
	  $(strip $(CLOUDBUILD_REGION)), --region='$(CLOUDBUILD_REGION)')

template-image-docker:
	$(call require,PROJECT REGION REPOSITORY IMAGE)
	$(call require_cmd,docker,install Docker, or build with BUILDER=cloudbuild)
	docker build --platform=linux/amd64 -f '$(CURRENTS_ROOT)/templates/Dockerfile' $(_IMAGE_BUILD_ARGS) \
	  -t '$(IMAGE)' '$(CURRENTS_ROOT)'
	docker push '$(IMAGE)'

template-spec:
	$(call require,PROJECT BUCKET IMAGE TEMPLATE_PATH)
	$(call require_cmd,gcloud,$(_GCLOUD_HINT))
	gcloud dataflow flex-template build '$(TEMPLATE_PATH)' --project='$(PROJECT)' \
	  --image='$(IMAGE)' --sdk-language=PYTHON --metadata-file='$(CURRENTS_ROOT)/templates/metadata.json'

## template-run: start the job (returns once Dataflow accepted it; streaming jobs are not awaited)
template-run:
	$(call require,PROJECT REGION BUCKET IMAGE TEMPLATE_PATH JOB_NAME SERVICE_ACCOUNT SOURCE CONNECTORS DEAD_LETTER)
	$(call require_cmd,gcloud,$(_GCLOUD_HINT))
	gcloud dataflow flex-template run '$(JOB_NAME)' --project='$(PROJECT)' --region='$(REGION)' \
	  --template-file-gcs-location='$(TEMPLATE_PATH)' \
	  --service-account-email='$(SERVICE_ACCOUNT)' \
	  --staging-location='$(STAGING_LOCATION)' --temp-location='$(TEMP_LOCATION)' \
	  --enable-streaming-engine $(_run_options) \
	  --parameters='^~^$(_parameters)'

# Template parameters, `~`-separated (gcloud's ^~^ delimiter syntax, see `gcloud topic escaping`): values keep
# their commas (inline JSON, generate:count=N,rate=R, kafka:HOST:PORT,HOST:PORT/TOPIC). CONNECTORS and PARAMETERS
# are passed as typed ($(value ...)): a ${NAME} in them reaches the job instead of being expanded by make.
_parameters = source=$(SOURCE)~connectors=$(value CONNECTORS)~dead_letter=$(DEAD_LETTER)$(strip \
	)~sdk_container_image=$(IMAGE)$(if $(strip $(value PARAMETERS)),~$(value PARAMETERS))
_updating = $(filter 1 true yes,$(UPDATE))
_run_options = $(strip \
	$(if $(strip $(EXPERIMENTS)),--additional-experiments='$(EXPERIMENTS)') \
	$(if $(strip $(MAX_WORKERS)),--max-workers='$(MAX_WORKERS)') \
	$(if $(strip $(WORKER_MACHINE_TYPE)),--worker-machine-type='$(WORKER_MACHINE_TYPE)') \
	$(if $(_updating),--update) \
	$(if $(and $(_updating),$(strip $(value TRANSFORM_NAME_MAPPINGS))),$(strip \
	  )--transform-name-mappings='^~^$(value TRANSFORM_NAME_MAPPINGS)'))

## template-update: replace the running job JOB_NAME in place (give the same parameters as template-run)
template-update: UPDATE := 1
template-update: template-run

## template-drain: stop the running job JOB_NAME after it has finished what it already read
template-drain:
	$(call require,PROJECT REGION JOB_NAME)
	$(call require_cmd,gcloud,$(_GCLOUD_HINT))
	@ids=$$(gcloud dataflow jobs list --project='$(PROJECT)' --region='$(REGION)' --status=active \
	  --filter='name=$(JOB_NAME)' --format='value(id)'); \
	if [ -z "$$ids" ]; then echo "no active job named $(JOB_NAME) in $(REGION)"; exit 1; fi; \
	echo "draining $(JOB_NAME): $$ids"; gcloud dataflow jobs drain $$ids --project='$(PROJECT)' --region='$(REGION)'

## template-vars: every variable the template targets use, as they resolve now
template-vars:
	@printf '%-24s %s\n' PROJECT '$(PROJECT)' REGION '$(REGION)' REPOSITORY '$(REPOSITORY)' TAG '$(TAG)' \
	  IMAGE '$(IMAGE)' BUCKET '$(BUCKET)' TEMPLATE_PATH '$(TEMPLATE_PATH)' STAGING_LOCATION '$(STAGING_LOCATION)' \
	  TEMP_LOCATION '$(TEMP_LOCATION)' BUILDER '$(BUILDER)' CLOUDBUILD_REGION '$(CLOUDBUILD_REGION)' \
	  LAUNCHER_TAG '$(LAUNCHER_TAG)' WITH_KAFKA '$(WITH_KAFKA)' \
	  JOB_NAME '$(JOB_NAME)' SERVICE_ACCOUNT '$(SERVICE_ACCOUNT)' SOURCE '$(SOURCE)' CONNECTORS '$(value CONNECTORS)' \
	  DEAD_LETTER '$(DEAD_LETTER)' PARAMETERS '$(value PARAMETERS)' EXPERIMENTS '$(EXPERIMENTS)' \
	  MAX_WORKERS '$(MAX_WORKERS)' WORKER_MACHINE_TYPE '$(WORKER_MACHINE_TYPE)' UPDATE '$(UPDATE)' \
	  TRANSFORM_NAME_MAPPINGS '$(value TRANSFORM_NAME_MAPPINGS)'

.DEFAULT_GOAL := $(_currents_default_goal)
