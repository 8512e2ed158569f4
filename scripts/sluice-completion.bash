# bash completion for sluice(1): its options, their values, `sluice stat`,
# and after `--` the command and its own arguments.

_sluice_flags="--conn-max --conn-mode --conn-idle --shed --retry-after --backlog --ports
--write-high --write-timeout --hold-reads --fs-max --fs-scope --fs-key --fs-timeout
--stats --log --strict --help --version --print-env --check"

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
                COMPREPLY=($(compgen -c -- "$cur"))
            else
                COMPREPLY=($(compgen -f -- "$cur"))
            fi
            return
        fi
    done
    if ((COMP_CWORD > 1)) && [[ ${COMP_WORDS[1]} == stat ]]; then
        if [[ $prev == -n ]]; then
            COMPREPLY=($(compgen -W "1 5 10 60" -- "$cur"))
        elif [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "-w -n --help" -- "$cur"))
        else
            COMPREPLY=($(compgen -f -- "$cur"))
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
        COMPREPLY=($(compgen -W "env systemd docker k8s" -- "$cur"))
        return
    fi
    case $prev in
        --conn-mode) COMPREPLY=($(compgen -W "pause shed" -- "$cur")); return ;;
        --conn-idle) COMPREPLY=($(compgen -W "hold free" -- "$cur")); return ;;
        --shed) COMPREPLY=($(compgen -W "http503 http429 close reset" -- "$cur")); return ;;
        --fs-scope) COMPREPLY=($(compgen -W "process host" -- "$cur")); return ;;
        --log) COMPREPLY=($(compgen -W "error warn info debug" -- "$cur")); return ;;
        --write-high) COMPREPLY=($(compgen -W "16K 64K 256K 1M 4M" -- "$cur")); return ;;
        --write-timeout|--fs-timeout) COMPREPLY=($(compgen -W "100ms 250ms 1s 2s 10s 1m" -- "$cur")); return ;;
        --retry-after) COMPREPLY=($(compgen -W "1 2 5 10 30 60" -- "$cur")); return ;;
        --conn-max|--fs-max|--backlog) COMPREPLY=($(compgen -W "1 2 4 8 16 32 64 128 256 512 1024" -- "$cur")); return ;;
        --fs-key)
            # The keys of host budgets this user already has.
            local keys=$(cd /dev/shm 2>/dev/null && compgen -G "sluice-fs-$UID-*" | sed "s/^sluice-fs-$UID-//")
            COMPREPLY=($(compgen -W "default $keys" -- "$cur")); return ;;
        --ports) return ;;
        --stats) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$_sluice_flags --" -- "$cur"))
    elif ((COMP_CWORD == 1)); then
        COMPREPLY=($(compgen -W "stat" -- "$cur") $(compgen -c -- "$cur"))
    else
        COMPREPLY=($(compgen -c -- "$cur"))
    fi
}
complete -F _sluice sluice
