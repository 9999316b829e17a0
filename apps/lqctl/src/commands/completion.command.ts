// `lqctl completion bash|zsh|fish`: shell completion of commands, subcommands and options, made
// from the command table (args.ts), so it never lags behind the commands.
import { COMMANDS, GLOBAL_OPTIONS, type CommandSpec } from '../args.js';
import { UsageError } from '../errors.js';
import { Exit } from '../exit-codes.js';
import { writeTo } from '../output/stream.js';
import type { Command } from './context.js';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;

function optionWords(spec: Pick<CommandSpec, 'options'>): string[] {
  return Object.keys(spec.options).map((o) => `--${o}`);
}

const GLOBAL = optionWords({ options: GLOBAL_OPTIONS });

function verbs(): string[] {
  return [...new Set(COMMANDS.map((c) => c.name.split(' ')[0]!)), 'help'];
}

function subcommands(verb: string): string[] {
  return COMMANDS.filter((c) => c.name.startsWith(`${verb} `)).map((c) => c.name.split(' ')[1]!);
}

/** A word list safe inside single quotes (the words are lqctl's own: letters, digits, -). */
function words(list: readonly string[]): string {
  return list.join(' ');
}

export function bashCompletion(): string {
  const cases = COMMANDS.map((c) => {
    const subs = c.name.includes(' ') ? [] : subcommands(c.name);
    return `    '${c.name}') opts='${words([...optionWords(c), ...GLOBAL])}'; subs='${words(subs)}' ;;`;
  });
  const groups = [
    ...new Set(COMMANDS.filter((c) => c.name.includes(' ')).map((c) => c.name.split(' ')[0]!)),
  ];
  const groupCases = groups
    .filter((g) => !COMMANDS.some((c) => c.name === g))
    .map((g) => `    '${g}') opts='${words(GLOBAL)}'; subs='${words(subcommands(g))}' ;;`);
  return `# lqctl completion for bash. Load it with:  source <(lqctl completion bash)
# or save it as /etc/bash_completion.d/lqctl.
_lqctl() {
  local cur="\${COMP_WORDS[COMP_CWORD]}"
  local key="" i w opts subs
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    [[ "$w" == "--" ]] && return 0
    [[ "$w" == -* ]] && continue
    if [[ -z "$key" ]]; then key="$w"; elif [[ "$key" != *" "* ]]; then
      case "$key $w" in
${COMMANDS.filter((c) => c.name.includes(' '))
  .map((c) => `        '${c.name}') key="${c.name}" ;;`)
  .join('\n')}
      esac
    fi
  done
  opts='${words(GLOBAL)}'; subs='${words(verbs())}'
  case "$key" in
${[...cases, ...groupCases].join('\n')}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
  fi
}
complete -F _lqctl lqctl
`;
}

export function zshCompletion(): string {
  return `#compdef lqctl
# lqctl completion for zsh. Load it with:  source <(lqctl completion zsh)
autoload -U +X bashcompinit && bashcompinit
${bashCompletion()}`;
}

export function fishCompletion(): string {
  const lines = [
    '# lqctl completion for fish. Load it with:  lqctl completion fish | source',
    'complete -c lqctl -f',
    `complete -c lqctl -n '__fish_use_subcommand' -a '${words(verbs())}'`,
    ...Object.keys(GLOBAL_OPTIONS).map((o) => `complete -c lqctl -l ${o}`),
  ];
  for (const c of COMMANDS) {
    const [verb, sub] = c.name.split(' ');
    if (sub) {
      lines.push(`complete -c lqctl -n '__fish_seen_subcommand_from ${verb}' -a '${sub}'`);
    }
    for (const o of Object.keys(c.options)) {
      lines.push(`complete -c lqctl -n '__fish_seen_subcommand_from ${sub ?? verb}' -l ${o}`);
    }
  }
  return `${[...new Set(lines)].join('\n')}\n`;
}

/** `lqctl completion bash|zsh|fish`: the script on stdout. */
export const completionCommand: Command = async (ctx, cmd) => {
  const shell = cmd.positionals[0]!;
  const script =
    shell === 'bash'
      ? bashCompletion()
      : shell === 'zsh'
        ? zshCompletion()
        : shell === 'fish'
          ? fishCompletion()
          : undefined;
  if (script === undefined) {
    throw new UsageError(`completion takes bash, zsh or fish (got ${shell})`);
  }
  await writeTo(ctx.stdout, script);
  return Exit.OK;
};
