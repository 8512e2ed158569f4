# puma.ru — the rack app puma serves in the server matrix: GET /big answers the
# file named by SERVERS_BIG, anything else "hi\n".
big = File.binread(ENV.fetch('SERVERS_BIG'))
run(lambda do |env|
  body = env['PATH_INFO'] == '/big' ? big : "hi\n"
  [200, { 'Content-Type' => 'text/plain', 'Content-Length' => body.bytesize.to_s }, [body]]
end)
