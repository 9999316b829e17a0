import { DEFAULT_SERVER } from './config.js';

export const VERSION = '0.1.0';

export const MAIN_USAGE = `lqctl: the LimiQuantix control plane from a terminal

Usage: lqctl [global options] <command> [options] [-- remote command]

Commands:
  login --api-key K | --username U   sign in (checks with the server, stores it in the config file)
  logout                             forget the stored credentials
  config get-contexts | use-context NAME | current-context | set-context NAME --server URL
                                     named contexts: a server and its credentials each
  whoami                             who the server thinks you are, and your roles
  vms ls [-p P] [-l env=prod]        VMs: id, project, node, agent state, OS, IPs, CPU%, mem%, labels
  vm show VM                         one VM in detail, with its labels
  vm label VM key=value… [key-…]     set (or remove) labels; fleet runs target them
  exec VM [options] -- CMD…          run a command, output live, exit with its exit code
  exec ls [filters]                  executions you may read, newest first
  exec show ID / exec logs ID [-f]   one execution; its output (-f: follow until it ends)
  run TARGET [options] -- CMD…       run a command over many VMs with a progress bar and summary
  runs ls [filters] / runs show ID   fleet runs; one run's VMs (--show-output: their output)
  cp LOCAL VM:/path | VM:/path LOCAL copy a file to or from a guest (streamed)
  ls [-l] VM:/dir                    a guest directory's entries, sorted (every page)
  rm [-r] VM:/path                   delete a guest file or empty directory (-r: a whole tree)
  mkdir [-p] VM:/dir / mv VM:/a VM:/b create a guest directory / rename within a guest
  quiesce VM / thaw VM               freeze / thaw the guest's filesystems (for snapshots)
  audit ls [filters]                 the audit trail, or with --executions the command history
  agent [versions | releases]        the fleet by agent version; the releases on offer
  agent update VM --version V        replace a VM's agent (verified, restarted, rolled back if bad)
  agent rollout TARGET --version V   roll a release out: canaries, concurrency, error budget
  agent release import DIR           upload a signed release folder (admins)
  audit show SEQ                     one audit row in full
  users, keys, projects, roles       administration: ls, create, … (lqctl users --help)
  completion bash|zsh|fish           shell completion: source <(lqctl completion bash)
  audit export [FILE]                every audit row and signed checkpoint, for offline checks
  audit verify FILE --public-key K   check an export offline: nothing missing, nothing altered

  lqctl <command> --help (or lqctl help <command>) describes each one.

Global options (anywhere before --):
  --server URL    the control plane (env LQ_SERVER, config file; default ${DEFAULT_SERVER},
                  which is what npm start serves)
  --context NAME  the config file's context to use (env LQ_CONTEXT; default its current one)
  --token T       an API key (lq_…) or access token (env LQ_TOKEN, config file)
  -o, --output F  listings and show: table (default), wide, json, yaml, name (ids only)
  --no-headers    tables without their header line
  --json          machine-readable output on stdout (-o json for listings)
  -h, --help      help           --version   lqctl's version

Config file: $XDG_CONFIG_HOME/lqctl/config.json (default ~/.config/lqctl/config.json, or the
file LQCTL_CONFIG names), written by lqctl login with mode 0600. It holds named contexts (a
server and its credentials each, like kubectl's) and which is current. Flags win over the
environment, which wins over the file; a context's credentials are only sent to its server
(another --server or LQ_SERVER stops with exit 4, naming the context of that server if any).

Exit codes:
  0    success
  1    the control plane refused or the operation failed (the message says why);
       run: some VM did not succeed
  2    usage error, or an operation this control plane does not offer (quiesce, thaw)
  3    the control plane cannot be reached
  4    not signed in, or the key or session was revoked or expired (run lqctl login)
  5    permission denied (the message names the missing permission)
  exec passes the remote command's exit code through once it has started: 128+N when killed
  by signal N, 124 timed out, 130 cancelled (Ctrl-C), 255 agent lost or no exit code.
  exec, when the guest refuses to start the command (as docker exec and ssh): 127 not found,
  126 not executable or the --cwd is unusable, 1 frozen guest, unknown user, run-as limits.
  run: 130 when cancelled.
`;

const EXEC_OPTIONS = `  -u, --user U               run as user U (name or uid)
  -g, --group G              with group G (default: U's primary group)
      --supplementary-groups keep U's supplementary groups
      --timeout S            kill the command's process group after S (30, 90s, 5m, 1h);
                             default 1h (the server's LQ_EXEC_ASYNC_TIMEOUT_SECONDS; with
                             exec --sync 30s, LQ_GUEST_TIMEOUT_SECONDS), at most 1h (its
                             LQ_GUEST_TIMEOUT_MAX_SECONDS)
      --cwd DIR              working directory in the guest
  -e, --env K=V              extra environment (repeatable)
      --shell                run CMD… joined as one /bin/sh -c command line`;

export const COMMAND_USAGE: Record<string, string> = {
  login: `Usage: lqctl [--server URL] [--context NAME] login --api-key K
       lqctl [--server URL] [--context NAME] login --username U

Signs in to the control plane and stores the credentials (and the server) in the config file,
mode 0600, after checking them with GET /api/auth/me; prints who you are. They are stored as
the context --context names (created if new; else the current context, else "default"), which
becomes the current one: lqctl --server https://prod:8080 --context prod login --api-key -

  --api-key K        an API key (lq_…); "-" reads it from the terminal without echo, or stdin
  -u, --username U   sign in with a password: asked on the terminal without echo, or the first
                     line of stdin when it is not a terminal. The session's access token is
                     refreshed automatically (before it expires, and on a 401).
`,
  logout: `Usage: lqctl [--context NAME] logout

Removes the context's stored credentials from the config file (its server setting stays).
`,
  config: `Usage: lqctl config get-contexts [-o wide|json|yaml|name] [--no-headers]
       lqctl config current-context
       lqctl config use-context NAME
       lqctl config set-context NAME --server URL
       lqctl config delete-context NAME

Named contexts of the config file, as kubectl's: each is a server and its credentials (never
shown). lqctl login --context NAME signs one in and makes it current; --context NAME (or
LQ_CONTEXT) picks one for a single command.

  get-contexts      every context: CURRENT (*), NAME, SERVER, USER (-o wide: AUTH)
  current-context   the current context's name (exit 1 when none is set)
  use-context       make NAME the current context
  set-context       create NAME for a server, or move it to another (its credentials go)
  delete-context    forget NAME and its credentials
`,
  whoami: `Usage: lqctl whoami

Who the server thinks you are (GET /api/auth/me): user, how you signed in, roles per project.
`,
  'vms ls': `Usage: lqctl vms ls [--project P] [-l SELECTOR] [-o wide|json|yaml|name] [--no-headers]

The VMs you may read: id, project, node, agent state, OS, IP addresses, CPU% and memory% from
the latest telemetry, labels. -o wide adds the agent version and hostname; -o json prints the
API's VM objects.

  -p, --project P     only VMs of project P
  -l, --selector S    only VMs whose labels match, as kubectl's -l: env=prod,role!=db,team,!old
                      (equal, not equal, has the label, has not)
`,
  'vm show': `Usage: lqctl vm show VM [--json]

One VM: project, node, agent state and version, hostname, OS, kernel, labels, capabilities,
interfaces and addresses, CPU, memory, load, uptime.
`,
  'vm label': `Usage: lqctl vm label VM key=value… [key-…] [--replace]

Sets labels on a VM (admin only); fleet runs target them (lqctl run --target env=prod).
key=value sets a label, key- removes one; the other labels stay unless --replace is given,
which makes the arguments the VM's only labels.
`,
  exec: `Usage: lqctl exec VM [options] -- CMD ARGS…

Runs a command in the guest as an asynchronous execution and follows its output live: the
command's stdout goes to stdout and its stderr to stderr as they arrive. If the stream breaks,
lqctl reconnects and resumes after the last chunk it printed. lqctl exits with the command's
exit code (128+N when killed by signal N, 124 timed out, 130 cancelled, 255 agent lost or
failed without an exit code); when the guest refuses to start it, 127 (not found), 126 (not
executable, unusable --cwd) or 1 (frozen guest, unknown user, run-as limits).

Ctrl-C once cancels the execution in the guest (its whole process group) and keeps following
until it ends; Ctrl-C twice stops waiting and exits 130.

${EXEC_OPTIONS}
      --stdin                send lqctl's stdin to the command (up to the server's limit, 1 MiB)
      --sync                 use the synchronous POST /api/vms/:id/execute instead: output
                             arrives when the command ends (short commands; Ctrl-C does not
                             cancel it)
      --json                 NDJSON on stdout: {"event":"started"…}, {"event":"output",
                             "seq","stream","text"}…, {"event":"end", status, exit_code…}
`,
  run: `Usage: lqctl run (--target LABELS | --vms A,B,C | --project P | --all) [options] -- CMD ARGS…

Runs a command over many VMs as one fleet run: at most --max-concurrency VMs at a time,
stopping new starts once more than --max-errors have failed. Shows a progress bar on a
terminal (a line every 2 s otherwise), then each VM's state and exit code and the counts.
Exits 0 only if every VM succeeded (1 otherwise, 130 when cancelled). Ctrl-C cancels the run
(no new VMs start, running executions are cancelled); Ctrl-C twice stops waiting.

  -t, --target LABELS        VMs carrying every label: env=prod,role=db
      --vms A,B,C            these VMs
  -p, --project P            every VM of project P
      --max-concurrency N|N% VMs at a time: a number or a percentage of the targets (default 10)
      --max-errors N|N%      stop starting VMs once more than this many have failed
      --all                  every VM you can see (lqctl lists them first)
      --dry-run              print the VMs the target matches and whether each would run or
                             be denied (POST /api/runs/preview); nothing runs
      --show-output          print each VM's output (stdout, then stderr) before the table,
                             like aws ssm list-command-invocations --details
${EXEC_OPTIONS}
  -o json|yaml               print the final run (every VM's execution id; with
                             --show-output each VM's stdout and stderr) as JSON or YAML
`,
  'audit show': `Usage: lqctl audit show SEQ [-o json|yaml]

One audit row (needs audit.read) with every field: kind, actor, how it signed in, from where,
VM, node, project, operation, params, status, exit code, duration, error, output digests.
`,
  users: `Usage: lqctl users [ls]                       every user (global admin)
       lqctl users create NAME [--password-stdin]  a user; without a password it signs in
                                                   with API keys only (lqctl keys create)
       lqctl users disable NAME | enable NAME      a disabled user's keys stop working

  --password-stdin   read the password (12+ characters) from the first line of stdin
`,
  keys: `Usage: lqctl keys [ls] [--user U]
       lqctl keys create [--user U] [--name N] [--expires-days D]
       lqctl keys revoke ID

API keys: your own, or another user's with --user (an admin). create prints the key once.
`,
  projects: `Usage: lqctl projects [ls]
       lqctl projects create ID [--name N]

Projects (id, name, VM count); VMs move between them with PUT /api/vms/ID/project.
`,
  roles: `Usage: lqctl roles [ls]
       lqctl roles bind USER ROLE [-p PROJECT] [--restrictions JSON]
       lqctl roles unbind ID

Role bindings: ROLE is admin, operator, viewer, auditor or output_auditor; without --project
the binding holds on every project. --restrictions limits it further, e.g.
'{"exec_non_root": true}' or '{"exec_users": ["deploy"], "file_paths": ["/srv"]}'.
`,
  completion: `Usage: lqctl completion bash|zsh|fish

Prints a completion script for commands, subcommands and options:

  bash   source <(lqctl completion bash)     (or save it in /etc/bash_completion.d/lqctl)
  zsh    source <(lqctl completion zsh)      (in ~/.zshrc)
  fish   lqctl completion fish | source      (or save it in ~/.config/fish/completions/)
`,
  'exec ls': `Usage: lqctl exec ls [filters] [--limit N] [-o wide|json|yaml|name] [--no-headers]

The executions you may read (guest.exec or audit.read on their project; GET /api/executions),
newest first: id, VM, actor, command, status, exit code, when, how long. -o wide adds the
project, the run-as user and the fleet run.

  --vm V                VM id
  -p, --project P       project
  --state S             pending, running, succeeded, failed, timed_out, cancelled, agent_lost
                        (several: failed,timed_out)
  --actor A             who started it
  --run ID              executions of one fleet run
  --since T, --until T  a time: 1h, 30m, 2d (ago) or ISO 8601
  --limit N             rows (default 50)
`,
  'exec show': `Usage: lqctl exec show ID [-o json|yaml|name]

One execution: VM, actor, command, status, exit code or signal, error, timings, output sizes.
Its output: lqctl exec logs ID.
`,
  'exec logs': `Usage: lqctl exec logs ID [-f]

The execution's output so far: its stdout to stdout, its stderr to stderr (exit 0).
With -f (--follow), attaches to a running execution: the output so far, then live output
until it ends, and exits with its exit code as lqctl exec does. Ctrl-C stops following (the
execution goes on; cancel it with the API's POST /api/executions/ID/cancel).
--json prints each chunk as one JSON line {seq, stream, text, base64}.

  -f, --follow   follow until the execution ends
`,
  'runs ls': `Usage: lqctl runs ls [filters] [--limit N] [-o wide|json|yaml|name] [--no-headers]

Fleet runs (GET /api/runs), newest first: your own, or every run with a global auditor or
admin binding. -o wide adds the counts by state and the end time.

  --vm V                runs that targeted VM V
  -p, --project P       runs that targeted a VM of project P
  --state S             running, succeeded, failed, stopped, cancelled (several: a,b)
  --actor A             who started it
  --since T, --until T  a time: 1h, 30m, 2d (ago) or ISO 8601
  --limit N             rows (default 50)
`,
  'runs show': `Usage: lqctl runs show ID [--show-output] [-o json|yaml|name]

A fleet run: target, command, status, counts, and each VM's state, exit code and execution.

  --show-output   each VM's output (stdout, then stderr after a "--- stderr" line) under a
                  "=== VM: state (exit N)" line; -o json adds stdout and stderr to each VM
`,
  cp: `Usage: lqctl cp LOCAL VM:/path [--mode 0644]
       lqctl cp VM:/path LOCAL

Copies a file to a guest (PUT /api/vms/:id/files, replaced atomically) or from one (GET),
streamed in chunks, with a progress bar on a terminal. LOCAL "-" is stdin or stdout; a
directory as LOCAL, or a guest path ending in /, takes the source's file name. A download is
written beside its destination and renamed when complete, so a cut transfer leaves no half file.

  --mode 0644   permission bits of the uploaded guest file
`,
  ls: `Usage: lqctl ls [-l] VM:/dir

Lists a guest directory (GET /api/vms/:id/files/list), sorted by name, following the API's
cursor until the last page. Names only (directories end in /, links in @), or with -l the
mode, owner, group, size, modification time and link target. --json prints every entry.
Links are never followed; the directory must be inside the agent's files.roots.

  -l, --long   one line per entry with its details
`,
  rm: `Usage: lqctl rm [-r] VM:/path

Deletes a guest file, symbolic link (not what it points to) or empty directory
(DELETE /api/vms/:id/files). A directory with contents only with -r, which deletes it with
everything in it and never follows a link or crosses into another filesystem. "/" and the
agent's files.roots themselves are refused.

  -r, --recursive   delete a directory and everything in it
`,
  mkdir: `Usage: lqctl mkdir [-p] [--mode 0755] VM:/dir

Creates a guest directory (POST /api/vms/:id/files/mkdir).

  -p, --parents   create missing parents too; an existing directory is not an error
      --mode M    permission bits (default 0755)
`,
  mv: `Usage: lqctl mv [-f] VM:/from VM:/to

Renames or moves a file or directory within one guest (POST /api/vms/:id/files/rename). An
existing destination is refused unless -f, and a directory is never replaced.

  -f, --force   replace an existing file at the destination
`,
  quiesce: `Usage: lqctl quiesce VM [--mount PATH]… [--timeout S]
       lqctl quiesce --status VM

Freezes the guest's filesystems for a consistent snapshot (POST /api/vms/:id/quiesce): the
agent runs its pre-freeze hooks, then freezes the mounts; prints what was frozen, each hook's
result and when the guest thaws by itself. Take the snapshot, then lqctl thaw VM.

  -m, --mount PATH   a mount point to freeze (repeatable; default: every freezable local one)
      --timeout S    the guest thaws by itself after S without a thaw (30, 90s, 5m)
      --status       whether the guest is frozen, which mounts, until when

A control plane without quiesce answers 404: lqctl says so and exits 2.
`,
  thaw: `Usage: lqctl thaw VM

Thaws filesystems frozen by lqctl quiesce (POST /api/vms/:id/thaw); exits 2 on a control
plane without it.
`,
  'audit ls': `Usage: lqctl audit ls [filters] [--executions] [--limit N] [--format table|ndjson|csv]

The audit trail (needs audit.read), newest first; with --executions the command history (who
ran what where, as whom, exit code, duration). Tables page through the API with its cursor;
ndjson and csv stream the server's export (every matching row up to --limit).

  --actor A             username
  --vm V                VM id
  -p, --project P       project
  --operation O         execute, ping, file.read, file.write, shutdown, run, user.create, …
  --kind K              intent, outcome, denied, auth_failed, admin (the trail only)
  --outcome O           ok (or succeeded), error (every other outcome: a non-zero exit is
                        failed), or a status (failed, timed_out, PERMISSION_DENIED, …)
  --since T, --until T  a time: 1h, 30m, 2d (ago) or ISO 8601 (2026-11-03T10:00:00Z)
  --limit N             rows (table default 50; ndjson and csv default all)
  --format F            table (default), ndjson or csv
  --json                the table's rows as a JSON array
`,
  'agent releases': `Usage: lqctl agent releases [--json]

The agent releases the control plane holds (GET /api/agent/releases), newest first: version,
commit, build targets, and whether it is offered for updates (every executable signed, and the
signature verified when the control plane has LQ_AGENT_RELEASE_KEYS).
`,
  'agent versions': `Usage: lqctl agent versions [--json]

The fleet by agent version and build target, with the VMs older than the newest release marked
outdated (GET /api/agent/versions). Also what plain \`lqctl agent\` shows.
`,
  'agent update': `Usage: lqctl agent update VM --version V [--allow-downgrade] [--json]

Replaces the VM's agent with release V (POST /api/vms/VM/agent/update): the executable for the
VM's build target is sent in chunks, verified in the guest (sha256, release signature, no
downgrade unless --allow-downgrade), swapped in and restarted; the agent is rolled back if the
new one does not report in time. Prints "VM: OLD -> NEW: ready | rolled_back (why) | failed";
exits 0 only when ready.
`,
  'agent rollout': `Usage: lqctl agent rollout (--target LABELS | --vms A,B,C | --project P) --version V [options]

Rolls release V out over VMs (POST /api/agent/rollouts): the canaries first, one at a time,
then the rest --max-concurrency at once; once more than --max-errors VMs failed or rolled back,
no further VM is started. Prints progress on stderr, then each VM's step (sent, verified,
restarted, ready, rolled_back, failed, skipped, denied); exits 0 only when every VM is ready.

  --canary N                 VMs updated first, one at a time (default 1)
      --max-concurrency N|P% VMs at once after the canaries (default 5)
      --max-errors N|P%      failures tolerated before stopping (default 0)
      --allow-downgrade      install V even where the running agent is newer
`,
  'agent release': `Usage: lqctl agent release import DIR

Uploads a release folder (what npm run package writes, with the release-manifest.json that
node scripts/sign-agent-release.mjs adds) to the control plane, which checks every file against
SHA256SUMS and the signed manifest and then offers it. Global admins only; audited.
`,
  'audit export': `Usage: lqctl audit export [FILE]

Every audit row with its hashes, and every signed checkpoint of the chain head, as NDJSON
(format lq-audit-export/1, README: audit export) into FILE (default: stdout). Needs audit.read
on every project. Check it with lqctl audit verify, on any machine, without the control plane.
`,
  'audit verify': `Usage: lqctl audit verify FILE --public-key K

Checks an export (lqctl audit export, GET /api/audit/export) offline: every row's hash over its
content and the previous row's hash, gapless sequence numbers, every checkpoint's Ed25519
signature, that the chain reaches each signed checkpoint, and that no row after the latest one
is missing. FILE - reads stdin. Exit 0 when intact; 1 naming the first missing or altered row.

  --public-key K   the raw Ed25519 public key, base64 (GET /api/audit/public-key, printed at
                   the control plane's start), or @FILE holding it. Get it from a source other
                   than the export itself.
  --json           the report as JSON
`,
};

/** Help for a topic: a command, a group ("vm", "vms", "audit"), or everything. */
export function usageOf(topic: string | undefined): string | undefined {
  if (topic === undefined) {
    return MAIN_USAGE;
  }
  const direct = COMMAND_USAGE[topic];
  if (direct) {
    return direct;
  }
  const group = Object.entries(COMMAND_USAGE).filter(([name]) => name.startsWith(`${topic} `));
  if (group.length > 0) {
    return group.map(([, text]) => text).join('\n');
  }
  // "users create": the group's page describes its subcommands.
  const word = topic.split(' ')[0]!;
  return word === topic ? undefined : COMMAND_USAGE[word];
}
