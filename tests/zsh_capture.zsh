# Test helper. usage: zsh -f zsh_capture.zsh <completion-script> <command line>...
# For each command line: what zsh offers on TAB at its end, space-separated, one line per command line.
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PROMPT='' RPROMPT=''"
zpty -w z "autoload -U compinit && compinit -u -D"
zpty -w z "source ${(q)1}"
zpty -w z 'compadd () {
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return $?; fi
  typeset -a __hits
  builtin compadd -A __hits "$@"
  local i; for i in $__hits; do print -r -- "<""<$i>"">"; done
}'
# TAB completes, then prints a marker; the next keys are sent only once it is seen (sent at
# once, they sometimes reached zle while it was still completing and the candidates were lost).
zpty -w z '__capture_tab () { zle complete-word; print -r -- "@@EN""D@@"; }; zle -N __capture_tab; bindkey "^I" __capture_tab'
zpty -w z 'print -r -- READY$((1+1))'
zpty -r z out '*READY2*'
shift
local cmdline
for cmdline; do
  out=""
  zpty -w -n z "$cmdline"$'\t'
  zpty -r z out '*@@END@@*'
  zpty -w -n z $'\C-e\C-u'
  print -r -- ${(j: :)${(ou)${(M)${(f)"$(print -r -- $out | tr -d '\r' | grep -o '<<[^>]*>>')"}:#<<*>>}}//(<<|>>)/}
done
zpty -d z
