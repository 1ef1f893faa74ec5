complete -c rscp -s c -d 'Cipher for the connection (passed to ssh)' -r
complete -c rscp -s D -d 'Connect directly to a local SFTP server' -r
complete -c rscp -s F -d 'Alternative ssh configuration file' -r -F
complete -c rscp -s i -d 'Identity (private key) file' -r -F
complete -c rscp -s J -d 'Connect through a jump host' -r
complete -c rscp -s l -d 'Limit the bandwidth, in Kbit/s' -r
complete -c rscp -s o -d 'An ssh option, in ssh_config format' -r
complete -c rscp -s P -d 'Port to connect to on the remote host' -r
complete -c rscp -s S -d 'Program to use for the connection (an ssh)' -r -f -a "(__fish_complete_command)"
complete -c rscp -s X -d 'SFTP option (buffer=, nrequests=)' -r
complete -c rscp -l generate -d 'Print the man page or shell completions (man, bash, zsh, fish)' -r -f -a "man\t''
bash\t''
zsh\t''
fish\t''"
complete -c rscp -s 1 -d 'Refused: SSH protocol 1 is no longer supported'
complete -c rscp -s 2 -d 'Ignored, for compatibility'
complete -c rscp -s 3 -d 'Copy between two remote hosts through the local host'
complete -c rscp -s 4 -d 'Use IPv4 addresses only'
complete -c rscp -s 6 -d 'Use IPv6 addresses only'
complete -c rscp -s A -d 'Allow forwarding of the authentication agent'
complete -c rscp -s B -d 'Batch mode: never ask for passwords or passphrases'
complete -c rscp -s C -d 'Enable compression'
complete -c rscp -s O -d 'Use the legacy SCP protocol (the default in rscp)'
complete -c rscp -s p -d 'Preserve modification times, access times and modes'
complete -c rscp -s q -d 'Quiet mode: no progress meter, no ssh warnings'
complete -c rscp -s R -d 'Copy between remote hosts by running scp on the origin host'
complete -c rscp -s r -d 'Copy directories recursively'
complete -c rscp -s s -d 'Use the SFTP protocol'
complete -c rscp -s T -d 'Disable strict filename checking of downloads'
complete -c rscp -s v -d 'Verbose mode; repeat for more'
complete -c rscp -s d -d 'Server: the target must be a directory'
complete -c rscp -s f -d 'Server: act as the source'
complete -c rscp -s t -d 'Server: act as the sink'
complete -c rscp -l help -d 'Print help'
complete -c rscp -l version -d 'Print version'
