#!/bin/sh
# limiquantix-agentctl: a client of the agent's socket. The agent's executable is agentctl too
# (`limiquantix-agent ctl ...`), so a guest carries one runtime, not two.
self=$(readlink -f -- "$0" 2>/dev/null) || self=$0
exec "${self%/*}/limiquantix-agent" ctl "$@"
