SELECT 'a' -- c
'b', E'x\'y' 'z', 'q'

  'r'