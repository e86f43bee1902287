// `flotilla completion bash|zsh|fish`: a completion script generated from the command tree, so it
// never lags behind the commands. Static (no process per Tab): regenerate after upgrading.
import type { Command } from 'commander';
import { commandTree, type CommandInfo } from '../command-tree.ts';
import { CliError, emit, type Output } from '../output.ts';

const words = (xs: string[]) => xs.join(' ');
const key = (c: CommandInfo) => c.path.join(' ');

function bash(tree: CommandInfo[]): string {
  const cases = tree.map((c) => `    '${key(c)}') echo '${words([...c.subcommands, ...c.options])}' ;;`).join('\n');
  return `# flotilla bash completion: source <(flotilla completion bash)
_flotilla_words() {
  case "$1" in
${cases}
  esac
}
_flotilla() {
  local cur=\${COMP_WORDS[COMP_CWORD]} path="" w i
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    [[ $w == -* ]] && continue
    if [[ -n "$(_flotilla_words "\${path:+$path }$w")" ]]; then path="\${path:+$path }$w"; fi
  done
  COMPREPLY=($(compgen -W "$(_flotilla_words "$path")" -- "$cur"))
}
complete -o default -F _flotilla flotilla
`;
}

function zsh(tree: CommandInfo[]): string {
  const cases = tree.map((c) => `    '${key(c)}') reply=(${c.subcommands.map((s) => `'${s}'`).join(' ')} ${c.options.map((o) => `'${o}'`).join(' ')}) ;;`).join('\n');
  return `#compdef flotilla
# flotilla zsh completion: flotilla completion zsh > "\${fpath[1]}/_flotilla"
_flotilla_words() {
  case "$1" in
${cases}
    *) reply=() ;;
  esac
}
_flotilla() {
  local path="" w i
  local -a reply
  for ((i = 2; i < CURRENT; i++)); do
    w=\${words[i]}
    [[ $w == -* ]] && continue
    _flotilla_words "\${path:+$path }$w"
    (( \${#reply} )) && path="\${path:+$path }$w"
  done
  _flotilla_words "$path"
  compadd -a reply
  _files
}
_flotilla "$@"
`;
}

function fish(tree: CommandInfo[]): string {
  const lines = ['# flotilla fish completion: flotilla completion fish > ~/.config/fish/completions/flotilla.fish', 'complete -c flotilla -f'];
  for (const c of tree) {
    // The condition: the words typed so far (without flags) are exactly this command's path.
    const cond = `test (string join ' ' (string match -v -- '-*' (commandline -opc)[2..-1])) = '${key(c)}'`;
    for (const s of c.subcommands) lines.push(`complete -c flotilla -n "${cond}" -a '${s}'`);
    for (const o of c.options) lines.push(`complete -c flotilla -n "${cond}" -l '${o.slice(2)}'`);
  }
  return lines.join('\n') + '\n';
}

export function registerCompletionCommand(program: Command, ctx: { out: () => Output }) {
  program
    .command('completion <shell>')
    .description('print a shell completion script: bash (source <(flotilla completion bash)), zsh or fish; "commands" lists the command tree')
    .action((shell: string) => {
      const tree = commandTree(program);
      if (shell === 'commands') return emit(ctx.out(), tree, () => tree.map((c) => key(c)).filter(Boolean).join('\n'));
      const script = { bash, zsh, fish }[shell as 'bash' | 'zsh' | 'fish'];
      if (!script) throw new CliError(`unknown shell "${shell}": use bash, zsh or fish`, 2);
      process.stdout.write(script(tree));
    });
}
