# bash completion for sluice(1): its options, their values, `sluice stat`,
# and after `--` the command and its own arguments.

_sluice_flags="--conn-max --conn-mode --conn-idle --shed --retry-after --backlog --ports
--write-high --write-timeout --hold-reads --fs-max --fs-scope --fs-key --fs-timeout
--stats --log --strict --help --version --print-env --check
--conn-scope --conn-key --queue-timeout --queue-max --queue-order --mem-high"

# COMPREPLY from compgen, one word a line (file names may hold spaces).
_sluice_reply()
{
    [[ $1 == -f ]] && compopt -o filenames 2>/dev/null
    mapfile -t COMPREPLY < <(compgen "$@")
}

_sluice()
{
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} i
    COMPREPLY=()
    # After `--` (or `sluice stat`): the command, or stats files.
    for ((i = 1; i < COMP_CWORD; i++)); do
        if [[ ${COMP_WORDS[i]} == -- ]]; then
            if declare -F _command_offset >/dev/null; then
                _command_offset $((i + 1))
            elif ((COMP_CWORD == i + 1)); then
                _sluice_reply -c -- "$cur"
            else
                _sluice_reply -f -- "$cur"
            fi
            return
        fi
    done
    if ((COMP_CWORD > 1)) && [[ ${COMP_WORDS[1]} == stat ]]; then
        if [[ $prev == -n ]]; then
            _sluice_reply -W "1 5 10 60" -- "$cur"
        elif [[ $cur == -* ]]; then
            _sluice_reply -W "-w -n --help" -- "$cur"
        else
            _sluice_reply -f -- "$cur"
        fi
        return
    fi
    # --flag=value: bash splits the word at '=' (COMP_WORDBREAKS).
    local after_equals=0
    if [[ $cur == = ]]; then
        cur="" after_equals=1
    elif [[ $prev == = ]]; then
        prev=${COMP_WORDS[COMP_CWORD-2]} after_equals=1
    fi
    if ((after_equals)) && [[ $prev == --print-env ]]; then
        _sluice_reply -W "env systemd docker k8s" -- "$cur"
        return
    fi
    case $prev in
        --conn-mode) _sluice_reply -W "pause shed" -- "$cur"; return ;;
        --conn-idle) _sluice_reply -W "hold free" -- "$cur"; return ;;
        --shed) _sluice_reply -W "http503 http429 close reset" -- "$cur"; return ;;
        --queue-order) _sluice_reply -W "fifo lifo" -- "$cur"; return ;;
        --fs-scope|--conn-scope) _sluice_reply -W "process host" -- "$cur"; return ;;
        --log) _sluice_reply -W "error warn info debug" -- "$cur"; return ;;
        --write-high) _sluice_reply -W "16K 64K 256K 1M 4M" -- "$cur"; return ;;
        --write-timeout|--fs-timeout|--queue-timeout) _sluice_reply -W "100ms 250ms 1s 2s 10s 1m" -- "$cur"; return ;;
        --retry-after) _sluice_reply -W "auto 1 2 5 10 30 60" -- "$cur"; return ;;
        --conn-max) _sluice_reply -W "auto 1 2 4 8 16 32 64 128 256 512 1024" -- "$cur"; return ;;
        --mem-high) _sluice_reply -W "80% 90% 95% 256M 1G" -- "$cur"; return ;;
        --fs-max|--backlog|--queue-max) _sluice_reply -W "1 2 4 8 16 32 64 128 256 512 1024" -- "$cur"; return ;;
        --fs-key)
            # The keys of host budgets this user already has.
            local keys
            keys=$(cd "/dev/shm/sluice-$UID" 2>/dev/null && compgen -G "fs-*" | sed "s/^fs-//")
            _sluice_reply -W "default $keys" -- "$cur"; return ;;
        --conn-key)
            # The keys of host connection budgets this user already has.
            local ckeys
            ckeys=$(cd "/dev/shm/sluice-$UID" 2>/dev/null && compgen -G "conn-*" | sed "s/^conn-//")
            _sluice_reply -W "default $ckeys" -- "$cur"; return ;;
        --ports) return ;;
        --stats) _sluice_reply -f -- "$cur"; return ;;
    esac
    if [[ $cur == -* ]]; then
        _sluice_reply -W "$_sluice_flags --" -- "$cur"
    elif ((COMP_CWORD == 1)); then
        _sluice_reply -W "stat $(compgen -c -- "$cur" | tr "\n" " ")" -- "$cur"
    else
        _sluice_reply -c -- "$cur"
    fi
}
complete -F _sluice sluice
