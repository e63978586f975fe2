# contrib/remote-build.mk — `make remote-build` for any project: create a sandbox from a profile,
# sync the project into it, run the build there, copy the artifacts back and destroy the sandbox,
# exiting with the build's own exit code (sandboxer run does all of it, and cleans up on failure
# and Ctrl-C too).
#
# In the project's Makefile:
#
#   SANDBOXER_PROFILE := vm-haskell-build-local
#   REMOTE_BUILD_CMD  := cabal build all && mkdir -p dist && cp "$$(cabal list-bin exe:hello)" dist/
#   REMOTE_ARTIFACTS  := dist/hello:dist
#   include path/to/sandboxer/contrib/remote-build.mk
#
# Variables (all may be set on the make command line too):
#   SANDBOXER_PROFILE  profile name or file (required)
#   REMOTE_BUILD_CMD   the build, one sh command line run in the workspace (default: make)
#   REMOTE_ARTIFACTS   space-separated REMOTE[:LOCAL_DIR] paths copied back after the build
#                      (REMOTE relative to the workspace; LOCAL_DIR default .)
#   REMOTE_REPO        the directory synced into the workspace (default: .)
#   SANDBOXER          the sandboxer command (default: sandboxer)
#   SANDBOXER_FLAGS    extra flags for `sandboxer run`, e.g. --keep-on-failure or --set k=v

SANDBOXER ?= sandboxer
REMOTE_BUILD_CMD ?= make
REMOTE_ARTIFACTS ?=
REMOTE_REPO ?= .
SANDBOXER_FLAGS ?=

# The build command goes to the sandbox as one argument of `sh -c`: single-quote it for make's
# shell, with each ' written as '\'' so any command line survives unchanged.
remote_build_quote = '$(subst ','\'',$(1))'

.PHONY: remote-build
remote-build:
	@test -n "$(SANDBOXER_PROFILE)" || { echo "remote-build.mk: set SANDBOXER_PROFILE (a sandboxer profile name or file)" >&2; exit 2; }
	$(SANDBOXER) run --profile $(call remote_build_quote,$(SANDBOXER_PROFILE)) \
	  --repo $(call remote_build_quote,$(REMOTE_REPO)) \
	  $(foreach a,$(REMOTE_ARTIFACTS),--artifact $(call remote_build_quote,$(a))) \
	  $(SANDBOXER_FLAGS) -- sh -c $(call remote_build_quote,$(REMOTE_BUILD_CMD))
